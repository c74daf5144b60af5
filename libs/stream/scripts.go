package stream

import "github.com/redis/go-redis/v9"

// The consumer's Lua scripts. Each one is atomic, so two replicas racing for
// the same entry see each other's claim, acknowledgement or dead-lettering.
//
// Entries are returned to Go as {id, fields, deliveries}: fields is false (a
// nil reply) for an entry trimmed away while pending; deliveries counts the
// delivery being made, included.

// claimOwnScript claims again entries pending with this consumer whose retry
// backoff elapsed (XCLAIM increments their delivery count and resets their idle
// time). An entry that another consumer took over meanwhile, or whose idle time
// is below its backoff, is left alone.
//
// KEYS[1] stream
// ARGV[1] group, ARGV[2] consumer, then pairs: entry id, min idle in ms
// Returns {{id, fields|false, deliveries}, ...}
var claimOwnScript = redis.NewScript(`
local out = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[i+1], id, id, 1, ARGV[2])
  if p[1] then
    local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[i+1], id)
    if c[1] and c[1][2] then
      out[#out+1] = {id, c[1][2], p[1][4] + 1}
    else
      out[#out+1] = {id, false, p[1][4] + 1}
    end
  end
end
return out
`)

// autoClaimScript takes over entries idle for at least min idle, whichever
// consumer they were pending with (XAUTOCLAIM), and returns them with their
// delivery counts.
//
// KEYS[1] stream
// ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle in ms, ARGV[4] start id, ARGV[5] count
// Returns {next start id, {{id, fields|false, deliveries}, ...}, {id of an entry trimmed away, ...}}
var autoClaimScript = redis.NewScript(`
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for i, e in ipairs(r[2]) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
  local n = 1
  if p[1] then n = p[1][4] end
  out[i] = {e[1], e[2], n}
end
return {r[1], out, r[3] or {}}
`)

// heartbeatScript resets the idle time of the entries this consumer is still
// handling (XCLAIM JUSTID leaves the delivery count alone), so that no other
// consumer takes them over with XAUTOCLAIM while their handler runs. An entry
// trimmed away meanwhile is left as it is (claiming it would drop it).
//
// KEYS[1] stream
// ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
// Returns the ids no longer pending with this consumer: another one took them over.
var heartbeatScript = redis.NewScript(`
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XRANGE', KEYS[1], id, id) > 0 then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
    if p[1] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    else
      lost[#lost+1] = id
    end
  end
end
return lost
`)

// deadLetterScript moves an entry pending with this consumer to the DLQ:
// XADD to the DLQ (trimmed with MAXLEN ~) and XACK, together.
//
// KEYS[1] origin stream, KEYS[2] DLQ
// ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] DLQ max length,
// ARGV[5..] field/value pairs of the dead letter
// Returns the DLQ entry id, or false when the entry is no longer pending with
// this consumer (another consumer took it over, or it was acknowledged).
var deadLetterScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if not p[1] then
  return false
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return id
`)

// retryDLQScript puts a dead letter back on its origin stream (trimmed with
// MAXLEN ~) and deletes it from the DLQ, together.
//
// KEYS[1] DLQ, KEYS[2] origin stream
// ARGV[1] DLQ entry id, ARGV[2] origin max length, ARGV[3..5] the entry's
// field names (FieldType, FieldData, FieldTraceparent; the dead letter keeps
// them under the same names)
// Returns the new entry id, or false when the dead letter is gone.
var retryDLQScript = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then
  return false
end
local f = e[1][2]
local v = {}
for i = 1, #f, 2 do
  v[f[i]] = f[i+1]
end
if v['origin_stream'] ~= KEYS[2] then
  return redis.error_reply('dead letter ' .. ARGV[1] .. ' comes from another stream')
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
  ARGV[3], v[ARGV[3]] or '', ARGV[4], v[ARGV[4]] or '', ARGV[5], v[ARGV[5]] or '')
redis.call('XDEL', KEYS[1], ARGV[1])
return id
`)

// deleteIdleConsumerScript deletes a consumer of the group if it has no
// pending entry (XGROUP DELCONSUMER would drop them).
//
// KEYS[1] stream
// ARGV[1] group, ARGV[2] consumer
// Returns 1 when it was deleted.
var deleteIdleConsumerScript = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
`)
