package kyapayredis

// The Store's transitions, one Lua script each, so that each is atomic on
// the Redis node that owns the keys. Every key a script touches carries the
// same hash tag (the token's shard), so the scripts run on Redis Cluster.
// Times are Unix milliseconds from the caller's clock; amounts are
// micro-dollars as decimal strings, compared as strings (never as Lua
// numbers); every key written gets a TTL that ends at its token's Until.

// prelude holds the helpers every script shares.
const prelude = `
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function s(v) if v then return v end return '' end
local function ttl(key, ms)
  if tonumber(ms) < 1 then ms = 1 end
  redis.call('PEXPIRE', key, ms)
end
local function extend(key, ms)
  local cur = redis.call('PTTL', key)
  if cur < tonumber(ms) then ttl(key, ms) end
end
-- merge folds a note into the balance hash bk.
local function merge(bk, ms, nk, nrem, ndec, nsd, ndu)
  local touched = false
  if nk == '1' then
    local cur = redis.call('HMGET', bk, 'kn', 'rem')
    if cur[1] ~= '1' or lt(nrem, cur[2]) then
      redis.call('HSET', bk, 'kn', '1', 'rem', nrem)
    end
    touched = true
  end
  if ndec ~= '0' then
    local d = redis.call('HGET', bk, 'dec')
    if not d or d == '0' or lt(ndec, d) then redis.call('HSET', bk, 'dec', ndec) end
    touched = true
  end
  if nsd == '1' then redis.call('HSET', bk, 'sd', '1'); touched = true end
  if ndu ~= '0' then
    local d = redis.call('HGET', bk, 'du')
    if not d or tonumber(ndu) > tonumber(d) then redis.call('HSET', bk, 'du', ndu) end
    touched = true
  end
  if touched then ttl(bk, ms) end
end
-- claim marks a charge ID accounted for on the token; false if it was.
local function claim(uk, id, now, ms, maxids)
  if redis.call('ZADD', uk, 'NX', now, id) == 0 then return false end
  local n = redis.call('ZCARD', uk)
  if n > maxids then redis.call('ZREMRANGEBYRANK', uk, 0, n - maxids - 1) end
  ttl(uk, ms)
  return true
end
local function balance(bk)
  local b = redis.call('HMGET', bk, 'kn', 'rem', 'dec', 'sd', 'du')
  return {s(b[1]), s(b[2]), s(b[3]), s(b[4]), s(b[5])}
end
local fields = {'st', 'lu', 'ch', 'ci', 'ca', 'rs', 'at', 's0', 'un', 'am', 'ha', 'iss', 'jti', 'tu', 'rt', 'ky'}
-- view returns a record as a flat list; hr tells a stored empty response
-- from none.
local function view(rk)
  local v = redis.call('HMGET', rk, unpack(fields))
  local out = {}
  for i = 1, #fields do out[i] = s(v[i]) end
  out[#fields + 1] = v[6] and '1' or '0'
  return out
end
-- live returns the record's state, dropping it if its token expired.
local function live(rk, q, now)
  local v = redis.call('HMGET', rk, 'st', 'tu')
  if not v[1] then return nil end
  if tonumber(v[2]) <= now then
    redis.call('DEL', rk)
    redis.call('ZREM', q, rk)
    return nil
  end
  return v[1]
end
-- expire turns a record whose holder's lease ended into what it left: a
-- known charge, or a charge of unknown outcome since the lease end.
local function expire(rk, q, now)
  local v = redis.call('HMGET', rk, 'st', 'lu', 'ch')
  if v[1] ~= 'f' or now < tonumber(v[2]) then return v[1] end
  if v[3] == '1' then
    redis.call('HSET', rk, 'st', 'c')
    redis.call('ZREM', q, rk)
    return 'c'
  end
  redis.call('HSET', rk, 'st', 'p', 'un', v[2])
  redis.call('ZADD', q, now, rk)
  return 'p'
end
local function hold(rk, q, attempt, now, lu, ms)
  redis.call('HSET', rk, 'st', 'f', 'at', attempt, 'lu', lu, 's0', now)
  redis.call('ZADD', q, lu, rk)
  extend(q, ms)
end
`

// scriptBalance: KEYS bal. Returns the balance.
const scriptBalance = prelude + `
return balance(KEYS[1])
`

// scriptNote: KEYS bal, used. ARGV now, ttl, nk, nrem, ndec, nsd, ndu,
// chargeID, maxids.
const scriptNote = prelude + `
local now, ms = tonumber(ARGV[1]), ARGV[2]
merge(KEYS[1], ms, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
if ARGV[8] ~= '' then claim(KEYS[2], ARGV[8], now, ms, tonumber(ARGV[9])) end
return 'OK'
`

// scriptBegin: KEYS rec, bal, queue. ARGV now, ttl, fp, attempt,
// leaseUntil, amount, hasAmount, iss, jti, tokenUntil, route, key.
// Returns {code, balance..., view...}: R reserved, F in flight, D done,
// P pending, M mismatch.
const scriptBegin = prelude + `
local rk, bk, q = KEYS[1], KEYS[2], KEYS[3]
local now, ms = tonumber(ARGV[1]), ARGV[2]
local bal = balance(bk)
local function answer(code, withView)
  local out = {code}
  for i = 1, 5 do out[#out + 1] = bal[i] end
  if withView then
    for _, v in ipairs(view(rk)) do out[#out + 1] = v end
  end
  return out
end
local st = live(rk, q, now)
if not st then
  if now >= tonumber(ARGV[10]) then return answer('R', false) end
  redis.call('HSET', rk, 'fp', ARGV[3], 'am', ARGV[6], 'ha', ARGV[7], 'iss', ARGV[8], 'jti', ARGV[9],
    'tu', ARGV[10], 'rt', ARGV[11], 'ky', ARGV[12], 'ch', '0')
  hold(rk, q, ARGV[4], now, ARGV[5], ms)
  ttl(rk, ms)
  return answer('R', false)
end
if redis.call('HGET', rk, 'fp') ~= ARGV[3] then return answer('M', false) end
st = expire(rk, q, now)
if st == 'c' then
  hold(rk, q, ARGV[4], now, ARGV[5], ms)
  return answer('R', true)
elseif st == 'f' then
  return answer('F', true)
elseif st == 'd' then
  return answer('D', true)
end
return answer('P', true)
`

// scriptFinish: KEYS rec, bal, used, queue. ARGV now, ttl, attempt, kind
// (R released, C charged, U unknown), chargeID, chargeAmount, hasResponse,
// response, started, unknown, nk, nrem, ndec, nsd, ndu, noteChargeID,
// maxids. Returns OK, or N when the attempt does not hold the key.
const scriptFinish = prelude + `
local rk, bk, uk, q = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ms = tonumber(ARGV[1]), ARGV[2]
merge(bk, ms, ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15])
if ARGV[16] ~= '' then claim(uk, ARGV[16], now, ms, tonumber(ARGV[17])) end
if live(rk, q, now) ~= 'f' or redis.call('HGET', rk, 'at') ~= ARGV[3] then return 'N' end
local kind = ARGV[4]
if kind == 'R' then
  redis.call('ZREM', q, rk)
  if redis.call('HGET', rk, 'ch') == '1' then
    redis.call('HSET', rk, 'st', 'c')
  else
    redis.call('DEL', rk)
  end
elseif kind == 'C' then
  redis.call('ZREM', q, rk)
  redis.call('HSET', rk, 'ch', '1', 'ci', ARGV[5], 'ca', ARGV[6])
  if ARGV[7] == '1' then
    redis.call('HSET', rk, 'st', 'd', 'rs', ARGV[8])
  else
    redis.call('HSET', rk, 'st', 'c')
    redis.call('HDEL', rk, 'rs')
  end
else
  redis.call('HSET', rk, 'st', 'p', 's0', ARGV[9], 'un', ARGV[10])
  if ARGV[7] == '1' then redis.call('HSET', rk, 'rs', ARGV[8]) else redis.call('HDEL', rk, 'rs') end
  redis.call('ZADD', q, now, rk)
  extend(q, ms)
end
return 'OK'
`

// scriptAddPending: KEYS pending, queue. ARGV now, ttl, id, amount,
// hasAmount, started, unknown, iss, jti, tokenUntil, route.
const scriptAddPending = prelude + `
local pk, q = KEYS[1], KEYS[2]
local now, ms = tonumber(ARGV[1]), ARGV[2]
if live(pk, q, now) or now >= tonumber(ARGV[10]) then return 'OK' end
redis.call('HSET', pk, 'st', 'p', 'at', ARGV[3], 'am', ARGV[4], 'ha', ARGV[5], 's0', ARGV[6], 'un', ARGV[7],
  'iss', ARGV[8], 'jti', ARGV[9], 'tu', ARGV[10], 'rt', ARGV[11], 'ky', '', 'ch', '0')
ttl(pk, ms)
redis.call('ZADD', q, ARGV[7], pk)
extend(q, ms)
return 'OK'
`

// scriptDue: KEYS queue. ARGV now, lease, limit. Returns the views of the
// pending records due, postponed by lease. The record keys come from the
// queue: they share its hash tag.
const scriptDue = prelude + `
local q = KEYS[1]
local now, lease, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local members = redis.call('ZRANGEBYSCORE', q, '-inf', now, 'LIMIT', 0, limit)
for _, rk in ipairs(members) do
  local st = live(rk, q, now)
  if not st then
    redis.call('ZREM', q, rk)
  else
    st = expire(rk, q, now)
    if st == 'p' then
      redis.call('ZADD', q, now + lease, rk)
      out[#out + 1] = view(rk)
    elseif st == 'f' then
      redis.call('ZADD', q, redis.call('HGET', rk, 'lu'), rk)
    else
      redis.call('ZREM', q, rk)
    end
  end
end
return out
`

// scriptResolve: KEYS rec, used, queue. ARGV now, ttl, pendingID, keyed,
// settled, attempt, leaseUntil, maxids, then charge ID and amount pairs.
// Returns {result, chargeID, chargeAmount, view...}: G gone, S stale or
// undecided (the view says which), C resolved charged, N resolved not
// charged.
const scriptResolve = prelude + `
local rk, uk, q = KEYS[1], KEYS[2], KEYS[3]
local now, ms = tonumber(ARGV[1]), ARGV[2]
local function answer(code, ci, ca, withView)
  local out = {code, ci, ca}
  if withView and redis.call('EXISTS', rk) == 1 then
    for _, v in ipairs(view(rk)) do out[#out + 1] = v end
  end
  return out
end
if not live(rk, q, now) then return {'G', '', ''} end
local st = expire(rk, q, now)
if st ~= 'p' or redis.call('HGET', rk, 'at') ~= ARGV[3] then return answer('S', '', '', true) end
local ci, ca = nil, nil
for i = 9, #ARGV, 2 do
  if claim(uk, ARGV[i], now, ms, tonumber(ARGV[8])) then
    ci, ca = ARGV[i], ARGV[i + 1]
    break
  end
end
if not ci and ARGV[5] ~= '1' then return answer('S', '', '', true) end
redis.call('ZREM', q, rk)
local code = ci and 'C' or 'N'
if ARGV[4] ~= '1' then
  redis.call('DEL', rk)
  return {code, s(ci), s(ca)}
end
if ci then
  redis.call('HSET', rk, 'ch', '1', 'ci', ci, 'ca', ca)
  if redis.call('HEXISTS', rk, 'rs') == 1 then
    redis.call('HSET', rk, 'st', 'd')
  elseif ARGV[6] ~= '' then
    hold(rk, q, ARGV[6], now, ARGV[7], ms)
  else
    redis.call('HSET', rk, 'st', 'c')
  end
  return answer(code, ci, ca, true)
end
if ARGV[6] ~= '' then
  redis.call('HDEL', rk, 'rs', 'ci', 'ca')
  redis.call('HSET', rk, 'ch', '0')
  hold(rk, q, ARGV[6], now, ARGV[7], ms)
  return answer(code, '', '', true)
end
redis.call('DEL', rk)
return {code, '', ''}
`
