-- Compare-and-set of one transaction on its version.
-- KEYS[1] tx key; ARGV[1] expected version; ARGV[2] new JSON; ARGV[3] time to live, ms.
-- Returns {1, new version, ''} when applied, {0, current version, current JSON} on a version
-- conflict, {0, 0, ''} when the transaction is gone.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then
  return {0, 0, ''}
end
if v ~= ARGV[1] then
  return {0, tonumber(v), redis.call('HGET', KEYS[1], 'd')}
end
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, nv, ''}
