-- Inserts a new transaction unless its key exists.
-- KEYS[1] tx key; ARGV[1] JSON; ARGV[2] time to live, ms.
-- Returns 1 (inserted, version 1) or 0 (exists).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
