-- Stores a value unless a live one is there.
-- KEYS[1] value key; ARGV[1] value; ARGV[2] time to live, ms.
-- Returns false (nil) when stored, the existing value otherwise.
local e = redis.call('GET', KEYS[1])
if e then
  return e
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
