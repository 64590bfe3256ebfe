-- Compare-and-set of one transaction on its version, in one write on the usual path. The record
-- is a string "<version>:<retain until, ms>:<JSON>" (see src/store/redis.rs).
-- KEYS[1] tx key; ARGV[1] "<expected version>:<new retain until>:"; ARGV[2] "<expected version>:";
-- ARGV[3] the new record "<expected + 1>:<new retain until>:<JSON>"; ARGV[4] time to live, ms.
-- Swaps the record in first (SET XX KEEPTTL GET: one call instead of GET then SET), then checks
-- the version it replaced; a script runs atomically, so nobody ever sees a swap that is undone.
-- Returns 1 when applied, the current record on a version conflict (left as it was, TTL too),
-- false (nil) when the transaction is gone (XX: nothing written).
local old = redis.call('SET', KEYS[1], ARGV[3], 'XX', 'KEEPTTL', 'GET')
if not old then
  return false
end
if string.sub(old, 1, #ARGV[1]) == ARGV[1] then
  -- Same version, same retention deadline: the kept TTL is the right one.
  return 1
end
if string.sub(old, 1, #ARGV[2]) == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
-- Another writer was first: put its record back.
redis.call('SET', KEYS[1], old, 'XX', 'KEEPTTL')
return old
