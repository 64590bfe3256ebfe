-- Compare-and-set of one transaction on its version. The record is a string
-- "<version>:<JSON>" (see src/store/redis.rs).
-- KEYS[1] tx key; ARGV[1] "<expected version>:"; ARGV[2] the new record "<expected + 1>:<JSON>";
-- ARGV[3] time to live, ms.
-- Returns 1 when applied, the current record on a version conflict, false (nil) when the
-- transaction is gone.
local cur = redis.call('GET', KEYS[1])
if not cur then
  return false
end
if string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then
  return cur
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
