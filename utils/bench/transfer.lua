-- Transfers between random pairs of the wallets listed in the file named by
-- the first script argument, amounts 1..100.
local wallets = {}
local headers = { ["Content-Type"] = "application/json" }
function init(args)
  for line in io.lines(args[1]) do
    table.insert(wallets, line)
  end
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

function request()
  local from = math.random(#wallets)
  local to = math.random(#wallets - 1)
  if to >= from then to = to + 1 end
  return wrk.format("POST", "/transfers", headers,
    string.format('{"from": "%s", "to": "%s", "amount": %d}', wallets[from], wallets[to], math.random(100)))
end
