-- Store a job's terminal result and record its usage, once per job id.
-- KEYS: 1 result, 2 job hash, 3 usage day, 4 usage hour, 5 status counts, 6 done list,
--       and for a batch job also 7 batch hash, 8 batch usage day, 9 batch usage hour
-- ARGV: 1 result json, 2 result ttl, 3 status, 4 usage field prefix ('' = not billed),
--       5 prompt tokens, 6 completion tokens, 7 cost nano-usd, 8 estimated (0/1),
--       9 usage ttl, 10 payload ttl, 11 tenant, 12 finished-at,
--       13 batch usage field prefix ('' = not billed; batch jobs only)
-- A batch job also counts into its batch: `done`, `n_<status>` and, when billed, the
-- batch's usage; the job that makes done == total ends the batch (completed, or
-- cancelled after a cancel, or expired when the completion window ran out on any job).
-- The job's open upstream call (attempt.lua) settles here: billed with the result when the
-- result carries tokens, otherwise counted as lost in flight (served upstream, never billed).
--#include lost_call.lua

local function settle_open_call(billed)
  local open = redis.call('HGET', KEYS[2], 'att')
  if not open then return end
  redis.call('HDEL', KEYS[2], 'att')
  if billed then return end
  count_lost_call(open, KEYS[3], KEYS[4], tonumber(ARGV[9]))
end

if redis.call('EXISTS', KEYS[1]) == 1 then
  settle_open_call(false)  -- a duplicate run's call: its result is never stored
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'fin', ARGV[12])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[10]))
local prefix = ARGV[4]
local prompt = tonumber(ARGV[5])
local completion = tonumber(ARGV[6])
local cost = tonumber(ARGV[7])
local estimated = tonumber(ARGV[8])
local usage_ttl = tonumber(ARGV[9])
settle_open_call(prefix ~= '' and prompt + completion > 0)

local function add_usage(key, field_prefix)
  redis.call('HINCRBY', key, field_prefix .. 'requests', 1)
  redis.call('HINCRBY', key, field_prefix .. 'prompt_tokens', prompt)
  redis.call('HINCRBY', key, field_prefix .. 'completion_tokens', completion)
  redis.call('HINCRBY', key, field_prefix .. 'cost_nanousd', cost)
  if estimated == 1 then
    redis.call('HINCRBY', key, field_prefix .. 'estimated', 1)
  end
  redis.call('EXPIRE', key, usage_ttl)
end

if prefix ~= '' then
  add_usage(KEYS[3], prefix)
  add_usage(KEYS[4], prefix)
end
redis.call('HINCRBY', KEYS[5], ARGV[11] .. '\t' .. ARGV[3], 1)
redis.call('EXPIRE', KEYS[5], usage_ttl)
redis.call('RPUSH', KEYS[6], '1')
redis.call('EXPIRE', KEYS[6], tonumber(ARGV[2]))

-- A batch whose record has aged out is not recreated by a straggler.
if #KEYS >= 9 and redis.call('EXISTS', KEYS[7]) == 1 then
  local batch = KEYS[7]
  redis.call('HINCRBY', batch, 'n_' .. ARGV[3], 1)
  local done = redis.call('HINCRBY', batch, 'done', 1)
  if ARGV[13] ~= '' then
    add_usage(KEYS[8], ARGV[13])
    add_usage(KEYS[9], ARGV[13])
    redis.call('HINCRBY', batch, 'requests', 1)
    redis.call('HINCRBY', batch, 'prompt_tokens', prompt)
    redis.call('HINCRBY', batch, 'completion_tokens', completion)
    redis.call('HINCRBY', batch, 'cost_nanousd', cost)
    redis.call('HINCRBY', batch, 'estimated', estimated)
  end
  local total = tonumber(redis.call('HGET', batch, 'total') or '-1')
  if done == total then
    local final = 'completed'
    if redis.call('HGET', batch, 'status') == 'cancelling' then
      final = 'cancelled'
    elseif tonumber(redis.call('HGET', batch, 'n_expired') or '0') > 0 then
      final = 'expired'
    end
    redis.call('HSET', batch, 'status', final, 'finalizing_at', ARGV[12],
               final .. '_at', ARGV[12])
  end
end
return 1
