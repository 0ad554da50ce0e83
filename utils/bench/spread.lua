-- Credits and debits spread over the wallets listed in the file named by
-- the first script argument: 70% credits, amounts 1..100.
-- With "sequential" as the second argument: credits of 1 to each wallet in
-- turn, so that every wallet is touched (to load the writer with them); the
-- third argument is the number of wrk threads, the fourth where to start.
local wallets = {}
local headers = { ["Content-Type"] = "application/json" }
local sequential = false
local next_index, step = 1, 1
function init(args)
  for line in io.lines(args[1]) do
    table.insert(wallets, line)
  end
  sequential = args[2] == "sequential"
  math.randomseed(os.time() + (thread_id or 0) * 7919)
  step = tonumber(args[3] or "1")
  next_index = (tonumber(args[4] or "0") + (thread_id or 1) - 1) % #wallets + 1
end

function request()
  if sequential then
    local w = wallets[next_index]
    next_index = next_index + step
    if next_index > #wallets then next_index = next_index - #wallets end
    return wrk.format("POST", "/wallet/" .. w .. "/credit", headers, '{"amount": 1}')
  end
  local w = wallets[math.random(#wallets)]
  local action = "credit"
  if math.random() >= 0.7 then action = "debit" end
  return wrk.format("POST", "/wallet/" .. w .. "/" .. action, headers,
    string.format('{"amount": %d}', math.random(100)))
end
