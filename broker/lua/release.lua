-- Give back a call's lease, settle its token estimate with the real usage, and feed the
-- outcome to the adaptive factor (AIMD), the latency EWMA and the circuit breaker.
-- KEYS: lease zset, ledger hash, state hash
-- ARGV: bucket prefix, lease id, bucket second, reserved tokens, actual tokens,
--       outcome (ok|pressure|error|none), now ms, latency ms, increase step,
--       decrease factor, min factor, decrease interval ms, failure threshold, tpm on (0/1),
--       keep ms (0: the lease ends; > 0: it passes to the worker's next call and lives on
--       for this long)
local prefix = ARGV[1]
local reserved, actual = tonumber(ARGV[4]), tonumber(ARGV[5])
local outcome = ARGV[6]
local now = tonumber(ARGV[7])
local keep = tonumber(ARGV[15] or '0') or 0
if keep > 0 then
  redis.call('ZADD', KEYS[1], now + keep, ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'handoffs', 1)
else
  redis.call('ZREM', KEYS[1], ARGV[2])
end
if ARGV[14] == '1' then
  local diff = actual - reserved
  if diff ~= 0 then
    local bucket = prefix .. 't:' .. ARGV[3]
    if redis.call('EXISTS', bucket) == 1 then redis.call('INCRBY', bucket, diff) end
    if diff < 0 then
      redis.call('HINCRBY', KEYS[2], 'refunded', -diff)
    else
      redis.call('HINCRBY', KEYS[2], 'reserved', diff)
    end
  end
  redis.call('HINCRBY', KEYS[2], 'actual', actual)
end
if outcome == 'none' then return 'none' end
local factor = tonumber(redis.call('HGET', KEYS[3], 'factor') or '1') or 1
if outcome == 'ok' then
  factor = math.min(1, factor + tonumber(ARGV[9]))
  local latency = tonumber(ARGV[8])
  local ewma = tonumber(redis.call('HGET', KEYS[3], 'ewma_ms') or '')
  if ewma == nil then ewma = latency else ewma = ewma * 0.8 + latency * 0.2 end
  redis.call('HSET', KEYS[3], 'factor', factor, 'ewma_ms', ewma, 'fails', 0, 'state', 'closed')
  return 'closed'
end
if outcome == 'pressure' then
  local last = tonumber(redis.call('HGET', KEYS[3], 'decreased_at') or '0') or 0
  if now - last >= tonumber(ARGV[12]) then
    factor = math.max(tonumber(ARGV[11]), factor * tonumber(ARGV[10]))
    local low = tonumber(redis.call('HGET', KEYS[3], 'low') or '1') or 1
    redis.call('HSET', KEYS[3], 'factor', factor, 'decreased_at', now, 'low', math.min(low, factor))
    redis.call('HINCRBY', KEYS[3], 'decreases', 1)
  end
end
local fails = redis.call('HINCRBY', KEYS[3], 'fails', 1)
local state = redis.call('HGET', KEYS[3], 'state') or 'closed'
if fails >= tonumber(ARGV[13]) and state ~= 'open' then
  redis.call('HSET', KEYS[3], 'state', 'open', 'opened_at', now)
  redis.call('HINCRBY', KEYS[3], 'opened', 1)
  return 'open'
end
return state
