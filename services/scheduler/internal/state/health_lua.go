package state

// Scripts of the health checks (docs/design.md §7). They share the prelude
// of lua.go (ARGV[1..5]). Their own keys live under {P}:health: (libs/keys,
// Health*; see health.go).

// DeleteOrphan: ARGV[6] runner name, ARGV[7] guard (ms), ARGV[8] delete
// command data, ARGV[9] traceparent, ARGV[10] backend.
// Emits the delete of an instance that has no record, at most once per guard
// period ({P}:health:orphan:<name>, SET NX PX). A runner that has a record is
// left alone. Returns 1 when the command was emitted.
var scriptDeleteOrphan = newScript(`
local name = ARGV[6]
if not writable(pkey(ARGV[10])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[10]) .. ' is not a stream')
end
if redis.call('EXISTS', rkey(name)) == 1 then return 0 end
if not redis.call('SET', horphan(name), NOW, 'NX', 'PX', ARGV[7]) then return 0 end
emit(pkey(ARGV[10]), ARGV[8], ARGV[9])
return 1
`)

// EmitList: ARGV[6] backend, ARGV[7] list command data, ARGV[8] traceparent,
// ARGV[9] spacing (ms), ARGV[10] command id, ARGV[11] what the command covers
// (kept for its inventory), ARGV[12] how long to keep it (ms).
// Emits at most one list command per backend and spacing
// ({P}:health:listed:<backend>), and remembers it under
// {P}:health:list:<command id>. Returns 1 when emitted.
var scriptEmitList = newScript(`
local backend = ARGV[6]
if not writable(pkey(backend)) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(backend) .. ' is not a stream')
end
if not redis.call('SET', hlisted(backend), NOW, 'NX', 'PX', ARGV[9]) then return 0 end
redis.call('SET', hlist(ARGV[10]), ARGV[11], 'PX', ARGV[12])
emit(pkey(backend), ARGV[7], ARGV[8])
return 1
`)

// SeenGitHubOrphans: ARGV[6] scope, then the members seen now ("<id>:<name>").
// Keeps in {P}:health:ghorphans:<scope> the time each member was first seen
// (ZADD NX), forgets the members not seen now, and returns
// {member, first seen (ms), ...} of the members seen now.
var scriptSeenGitHubOrphans = newScript(`
local key = hghorphans(ARGV[6])
local seen = {}
for i = 7, #ARGV do
  seen[ARGV[i]] = true
  redis.call('ZADD', key, 'NX', NOW, ARGV[i])
end
local out = {}
local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  if seen[all[i]] then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  else
    redis.call('ZREM', key, all[i])
  end
end
if #ARGV < 7 then redis.call('DEL', key) end
return out
`)

// SeenAbsent: ARGV[6] scope, then the runners absent from this listing.
// Counts in {P}:health:absent:<scope> the consecutive listings each was
// absent from, forgets the runners not absent now, and returns
// {runner, count, ...} of the runners absent now.
var scriptSeenAbsent = newScript(`
local key = habsent(ARGV[6])
local now = {}
local out = {}
for i = 7, #ARGV do
  now[ARGV[i]] = true
  local n = redis.call('HINCRBY', key, ARGV[i], 1)
  out[#out + 1] = ARGV[i]
  out[#out + 1] = n
end
for _, name in ipairs(redis.call('HKEYS', key)) do
  if not now[name] then redis.call('HDEL', key, name) end
end
return out
`)

// RedeleteStale: ARGV[6] runner, ARGV[7] cutoff (ms), ARGV[8] delete command
// data, ARGV[9] traceparent, ARGV[10] backend.
// Emits the delete of a runner again when it has been deleting with no news
// (updated_at) since before the cutoff, and stamps updated_at, so that it is
// emitted once per period. Returns 1 when emitted.
var scriptRedeleteStale = newScript(`
local name = ARGV[6]
if not writable(pkey(ARGV[10])) then
  return redis.error_reply('WRONGTYPE command stream ' .. pkey(ARGV[10]) .. ' is not a stream')
end
local k = rkey(name)
if redis.call('HGET', k, 'state') ~= 'deleting' then return 0 end
local upd = tonumber(redis.call('HGET', k, 'updated_at') or '0') or 0
if upd >= tonumber(ARGV[7]) then return 0 end
-- A failed delete whose retry is scheduled is not lost: it backs off.
if redis.call('ZSCORE', RETRY, 'delete:' .. name) then return 0 end
emit(pkey(ARGV[10]), ARGV[8], ARGV[9])
redis.call('HSET', k, 'updated_at', NOW)
return 1
`)
