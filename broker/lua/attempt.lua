-- A job's open upstream call: recorded before its request is sent, removed when the call
-- fails (nothing served), settled by finish_job.lua when its job ends, or counted as lost
-- in flight when it can no longer settle: the provider served (and bills) a call the
-- ledger never billed.
-- KEYS: 1 job hash, 2 open-attempt index (zset), 3 usage day, 4 usage hour,
--       5 live workers (zset, expire only)
-- ARGV: 1 op (open|close|forget|expire), 2 job id, 3 attempt id ('' = whichever, expire only),
--       4 now ms, 5 usage ttl s,
--       open:   6 record "<attempt id>\t<owner>\t<expires ms>\t<prompt>\t<completion>\t
--               <nano-USD>\t<usage field prefix>", 7 expires ms
--       expire: 6 liveness ttl ms, 7 ms after expiry a live owner's call counts lost anyway
-- Returns 1 when an attempt was counted lost in flight, else 0.
local field = 'att'
local op, job_id, now = ARGV[1], ARGV[2], tonumber(ARGV[4])

--#include lost_call.lua

local function count_lost(record)
  return count_lost_call(record, KEYS[3], KEYS[4], tonumber(ARGV[5]))
end

local open = redis.call('HGET', KEYS[1], field)

if op == 'open' then
  -- A call still open here belongs to an earlier delivery that ended without settling it.
  local counted = 0
  if open then counted = count_lost(open) end
  redis.call('HSET', KEYS[1], field, ARGV[6])
  redis.call('ZADD', KEYS[2], tonumber(ARGV[7]), job_id)
  return counted
end

if op == 'close' then
  if open and parse_open_call(open) == ARGV[3] then
    redis.call('HDEL', KEYS[1], field)
    redis.call('ZREM', KEYS[2], job_id)
  end
  return 0
end

if op == 'forget' then
  -- After a stored result: the call settled there, its index entry goes too.
  if not open then redis.call('ZREM', KEYS[2], job_id) end
  return 0
end

-- expire: the index entry of a job whose call settled (or whose hash is gone) is dropped;
-- an expired call counts as lost once its owner is dead, or long after it expired.
if not open then
  redis.call('ZREM', KEYS[2], job_id)
  return 0
end
local attempt_id, owner, expires = parse_open_call(open)
expires = tonumber(expires or '0') or 0
if ARGV[3] ~= '' and attempt_id ~= ARGV[3] then return 0 end
if expires > now then
  redis.call('ZADD', KEYS[2], expires, job_id)
  return 0
end
local beat = tonumber(redis.call('ZSCORE', KEYS[5], owner) or '0') or 0
if beat >= now - tonumber(ARGV[6]) and now < expires + tonumber(ARGV[7]) then
  redis.call('ZADD', KEYS[2], expires + tonumber(ARGV[7]), job_id)
  return 0
end
redis.call('HDEL', KEYS[1], field)
redis.call('ZREM', KEYS[2], job_id)
return count_lost(open)
