-- Take one call's worth of a scope's capacity: a concurrency lease, one request and an
-- estimate of tokens, in sliding windows of one-second buckets. All or nothing.
-- KEYS: lease zset, ledger hash, state hash (holds the adaptive factor)
-- ARGV: bucket prefix, now ms, lease id, lease ttl ms, concurrency, rpm, tpm, tokens,
--       window seconds
-- Returns {1, bucket second} or {0, reason, wait ms}.
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local sec = math.floor(now / 1000)
local window = tonumber(ARGV[9])
local factor = tonumber(redis.call('HGET', KEYS[3], 'factor') or '1') or 1
local function scaled(limit)
  limit = tonumber(limit)
  if limit <= 0 then return 0 end
  return math.max(1, math.floor(limit * factor))
end
local conc, rpm, tpm = scaled(ARGV[5]), scaled(ARGV[6]), scaled(ARGV[7])
local tokens = tonumber(ARGV[8])
if tpm > 0 and tokens > tpm then tokens = tpm end  -- a job bigger than the window waits for an empty one

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if conc > 0 and redis.call('ZCARD', KEYS[1]) >= conc then
  return {0, 'concurrency', 20}
end

-- A window of window+1 buckets, checked at admission, bounds every sliding window.
local function over(kind, limit, amount)
  if limit <= 0 then return nil end
  local names = {}
  for s = sec - window, sec do names[#names + 1] = prefix .. kind .. s end
  local values = redis.call('MGET', unpack(names))
  local total, first = 0, nil
  for i, v in ipairs(values) do
    local n = tonumber(v or '0') or 0
    if n > 0 and first == nil then first = i end
    total = total + n
  end
  if total + amount > limit then
    local oldest = sec - window + (first or 1) - 1
    return math.max((oldest + window + 1) * 1000 - now, 10)
  end
  return nil
end
local wait = over('r:', rpm, 1)
if wait then return {0, 'rpm', wait} end
wait = over('t:', tpm, tokens)
if wait then return {0, 'tpm', wait} end

if conc > 0 then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3]) end
if rpm > 0 then
  redis.call('INCR', prefix .. 'r:' .. sec)
  redis.call('EXPIRE', prefix .. 'r:' .. sec, window + 5)
end
if tpm > 0 then
  redis.call('INCRBY', prefix .. 't:' .. sec, tokens)
  redis.call('EXPIRE', prefix .. 't:' .. sec, window + 5)
  redis.call('HINCRBY', KEYS[2], 'reserved', tokens)
end
redis.call('HINCRBY', KEYS[2], 'calls', 1)
return {1, sec, tokens}
