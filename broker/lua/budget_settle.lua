-- Replace a job's reservation by its real usage, exactly once per job id.
-- KEYS: settled marker, then the budget hashes reserved against
-- ARGV: reserved tokens, reserved nano-USD, actual tokens, actual nano-USD, marker ttl
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[5])) == false then
  return 0
end
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved_tokens', -tonumber(ARGV[1]))
  redis.call('HINCRBY', KEYS[i], 'reserved_nanousd', -tonumber(ARGV[2]))
  redis.call('HINCRBY', KEYS[i], 'used_tokens', tonumber(ARGV[3]))
  redis.call('HINCRBY', KEYS[i], 'used_nanousd', tonumber(ARGV[4]))
end
return 1
