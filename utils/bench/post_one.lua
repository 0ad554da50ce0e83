-- POST {"amount": 1} to the URL given to wrk (one hot wallet's credit).
wrk.method = "POST"
wrk.body = '{"amount": 1}'
wrk.headers["Content-Type"] = "application/json"
