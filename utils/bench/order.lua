-- Orders of one random item of those listed in the file named by the second
-- script argument, 1 to 3 units, by a random wallet of those listed in the
-- file named by the first.
local wallets, items = {}, {}
local headers = { ["Content-Type"] = "application/json" }
function init(args)
  for line in io.lines(args[1]) do
    table.insert(wallets, line)
  end
  for line in io.lines(args[2]) do
    table.insert(items, line)
  end
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

function request()
  return wrk.format("POST", "/orders", headers,
    string.format('{"wallet_id": "%s", "lines": [{"item_id": "%s", "quantity": %d}]}',
      wallets[math.random(#wallets)], items[math.random(#items)], math.random(3)))
end
