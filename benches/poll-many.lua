-- benches/poll-many.lua — wrk load for benches/store-bench.sh and benches/instructions.sh: CIBA
-- token polls over many pending auth_req_ids in turn, as many RPs poll theirs.
-- Usage: BENCH_AUTHORIZATION="Basic …" wrk … -s benches/poll-many.lua URL -- <ids file>
-- (one auth_req_id per line; each thread starts at a random one).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
local ids = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then ids[#ids + 1] = line end
  end
  assert(#ids > 0, "no auth_req_id in " .. args[1])
  i = math.random(1, #ids)
end

function request()
  i = i % #ids + 1
  return wrk.format(nil, "/token", nil, "grant_type=urn:openid:params:grant-type:ciba&auth_req_id=" .. ids[i])
end
