-- Reserve a job's estimated tokens and cost against every budget that applies, or none;
-- once per job: a batch admitted again (a Redis outage, a lost worker) reserves nothing more.
-- KEYS: 1 the job's reservation marker, then the budget hashes (one per scope and period)
-- ARGV: estimated tokens, estimated nano-USD, ttl seconds, then per key:
--       token limit, nano-USD limit, soft threshold (share)
-- Returns {1, warned budget indexes...} or {0, budget index, 'tokens'|'usd'}; budget
-- indexes count from 1 over the budget keys.
local tokens, nanos, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function num(key, field) return tonumber(redis.call('HGET', key, field) or '0') or 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local budgets = {}
for i = 2, #KEYS do budgets[#budgets + 1] = KEYS[i] end
for i, key in ipairs(budgets) do
  local base = 3 + (i - 1) * 3
  local token_limit, usd_limit = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  if token_limit > 0 and num(key, 'used_tokens') + num(key, 'reserved_tokens') + tokens > token_limit then
    return {0, i, 'tokens'}
  end
  if usd_limit > 0 and num(key, 'used_nanousd') + num(key, 'reserved_nanousd') + nanos > usd_limit then
    return {0, i, 'usd'}
  end
end
redis.call('SET', KEYS[1], '1', 'EX', ttl)
local warned = {1}
for i, key in ipairs(budgets) do
  local base = 3 + (i - 1) * 3
  local token_limit, usd_limit = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local soft = tonumber(ARGV[base + 3])
  redis.call('HINCRBY', key, 'reserved_tokens', tokens)
  redis.call('HINCRBY', key, 'reserved_nanousd', nanos)
  redis.call('EXPIRE', key, ttl)
  local share = 0
  if token_limit > 0 then
    share = math.max(share, (num(key, 'used_tokens') + num(key, 'reserved_tokens')) / token_limit)
  end
  if usd_limit > 0 then
    share = math.max(share, (num(key, 'used_nanousd') + num(key, 'reserved_nanousd')) / usd_limit)
  end
  if share >= soft and redis.call('HSETNX', key, 'warned', '1') == 1 then
    warned[#warned + 1] = i
  end
end
return warned
