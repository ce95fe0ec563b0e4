-- Store a job's terminal result and record its usage, once per job id.
-- KEYS: result, job hash, usage day, usage hour, status counts, done list
-- ARGV: result json, result ttl, status, usage field prefix, prompt tokens,
--       completion tokens, cost nano-usd, estimated (0/1), usage ttl, payload ttl,
--       tenant, finished-at
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'fin', ARGV[12])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[10]))
local prefix = ARGV[4]
if prefix ~= '' then
  local prompt = tonumber(ARGV[5])
  local completion = tonumber(ARGV[6])
  local cost = tonumber(ARGV[7])
  local estimated = tonumber(ARGV[8])
  for i = 3, 4 do
    redis.call('HINCRBY', KEYS[i], prefix .. 'requests', 1)
    redis.call('HINCRBY', KEYS[i], prefix .. 'prompt_tokens', prompt)
    redis.call('HINCRBY', KEYS[i], prefix .. 'completion_tokens', completion)
    redis.call('HINCRBY', KEYS[i], prefix .. 'cost_nanousd', cost)
    if estimated == 1 then
      redis.call('HINCRBY', KEYS[i], prefix .. 'estimated', 1)
    end
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[9]))
  end
end
redis.call('HINCRBY', KEYS[5], ARGV[11] .. '\t' .. ARGV[3], 1)
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[9]))
redis.call('RPUSH', KEYS[6], '1')
redis.call('EXPIRE', KEYS[6], tonumber(ARGV[2]))
return 1
