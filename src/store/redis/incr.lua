-- Adds 1 to a counter (a missing or expired one counts from 0) and sets its time to live.
-- KEYS[1] counter key; ARGV[1] time to live, ms. Returns the new value.
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
