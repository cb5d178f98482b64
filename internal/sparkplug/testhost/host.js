// A Sparkplug B primary host application for Firebreak's tests, built on code nobody here wrote:
// Eclipse Tahu's payload decoder (npm sparkplug-payload) over MQTT.js. It connects with its STATE
// death certificate as its will, publishes its STATE birth, decodes every message of its group
// and checks the edge node's session rules as a host relies on them (Sparkplug 3.0):
//
//   - NBIRTH before anything else of the node, with a bdSeq metric and Node Control/Rebirth
//     (Boolean false, without an alias); a device's DBIRTH before its DDATA or DDEATH;
//   - seq: 0..255, one more on every message of the node after its NBIRTH (wrapping to 0);
//   - aliases: unique across the node, defined in a birth, and DATA carries aliases only;
//   - NDEATH: its bdSeq is the one of the node's NBIRTH;
//   - no DDATA of a device after its DDEATH until its next DBIRTH.
//
// Usage: node host.js <broker url> <host id> <group id>
// Commands on stdin, one a line: offline (STATE offline, then disconnect), online (connect
// again), rebirth <edge node id> (an NCMD Node Control/Rebirth = true), quit.
// Output on stdout, one JSON object a line: {"ev":"msg",...} for every message decoded,
// {"ev":"violation","rule":...,"detail":...} for every rule broken, {"ev":"online"} and
// {"ev":"offline"} when its STATE went out.
"use strict";

const mqtt = require("mqtt");
const readline = require("readline");
const sparkplug = require("sparkplug-payload").get("spBv1.0");

const [broker, hostId, group] = process.argv.slice(2);
if (!broker || !hostId || !group) {
  console.error("usage: node host.js <broker url> <host id> <group id>");
  process.exit(2);
}
const stateTopic = `spBv1.0/STATE/${hostId}`;

function out(o) {
  process.stdout.write(JSON.stringify(o) + "\n");
}

function violation(rule, detail) {
  out({ ev: "violation", rule, detail });
}

// num turns protobufjs's Long into a number.
function num(v) {
  if (v !== null && typeof v === "object" && typeof v.toNumber === "function") {
    return v.toNumber();
  }
  return v;
}

// nodes: per edge node, its session as the host knows it.
const nodes = new Map();

function session(node) {
  if (!nodes.has(node)) {
    nodes.set(node, { born: false, bdSeq: null, seq: null, wraps: 0, aliases: new Map(), devices: new Map() });
  }
  return nodes.get(node);
}

function checkSeq(s, kind, seq, where) {
  if (seq === undefined || seq === null || seq < 0 || seq > 255) {
    violation("seq-range", `${where}: ${kind} seq ${seq}`);
    return;
  }
  if (s.seq !== null) {
    const want = (s.seq + 1) % 256;
    if (seq !== want) {
      violation("seq-continuity", `${where}: ${kind} seq ${seq}, want ${want}`);
    }
    if (seq === 0 && s.seq === 255) {
      s.wraps++;
    }
  }
  s.seq = seq;
}

function registerAliases(s, device, metrics, where) {
  const mine = new Map();
  for (const m of metrics) {
    if (m.name === "Node Control/Rebirth") {
      if (m.alias !== undefined) violation("rebirth-alias", `${where}: Node Control/Rebirth has alias ${num(m.alias)}`);
      if (m.type !== "Boolean" || m.value !== false) violation("rebirth-metric", `${where}: Node Control/Rebirth is ${m.type} ${m.value}`);
      continue;
    }
    if (m.name === "bdSeq") continue;
    if (m.alias === undefined || m.name === undefined) {
      violation("birth-alias", `${where}: metric ${m.name} alias ${m.alias}`);
      continue;
    }
    const a = num(m.alias);
    const owner = s.aliases.get(a);
    if (owner && owner.device !== device) {
      violation("alias-unique", `${where}: alias ${a} of ${m.name} is already ${owner.device}/${owner.name}`);
    }
    if (mine.has(a)) violation("alias-unique", `${where}: alias ${a} twice`);
    mine.set(a, m.name);
    s.aliases.set(a, { device, name: m.name });
  }
  return mine;
}

function onMessage(topic, payload) {
  const parts = topic.split("/");
  if (parts[1] === "STATE") return;
  const [, grp, kind, node, device] = parts;
  if (grp !== group) return;
  let p;
  try {
    p = sparkplug.decodePayload(payload);
  } catch (e) {
    violation("decode", `${topic}: ${e.message}`);
    return;
  }
  const seq = p.seq === undefined ? null : num(p.seq);
  const metrics = (p.metrics || []).map((m) => ({
    name: m.name,
    alias: m.alias === undefined ? undefined : num(m.alias),
    type: m.type,
    value: num(m.value),
    timestamp: num(m.timestamp),
    historical: m.isHistorical === true,
    quality: m.properties && m.properties.Quality ? num(m.properties.Quality.value) : undefined,
    properties: m.properties ? Object.fromEntries(Object.entries(m.properties).map(([k, v]) => [k, num(v.value)])) : undefined,
  }));
  const s = session(node);
  const where = `${kind} ${node}${device ? "/" + device : ""}`;
  const msg = { ev: "msg", topic, kind, node, device: device || "", seq, timestamp: num(p.timestamp), metrics };
  switch (kind) {
    case "NBIRTH": {
      const bd = metrics.find((m) => m.name === "bdSeq");
      if (!bd || bd.type !== "Int64") violation("nbirth-bdseq", `${where}: no Int64 bdSeq metric`);
      if (!metrics.some((m) => m.name === "Node Control/Rebirth")) violation("nbirth-rebirth", `${where}: no Node Control/Rebirth`);
      s.born = true;
      s.bdSeq = bd ? bd.value : null;
      s.seq = null;
      s.aliases = new Map();
      s.devices = new Map();
      checkSeq(s, kind, seq, where);
      registerAliases(s, "", metrics, where);
      msg.bdSeq = s.bdSeq;
      break;
    }
    case "NDEATH": {
      const bd = metrics.find((m) => m.name === "bdSeq");
      msg.bdSeq = bd ? bd.value : null;
      if (s.born && (!bd || bd.value !== s.bdSeq)) {
        violation("ndeath-bdseq", `${where}: bdSeq ${bd && bd.value}, the NBIRTH had ${s.bdSeq}`);
      }
      msg.matched = s.born && bd && bd.value === s.bdSeq;
      s.born = false;
      s.seq = null;
      break;
    }
    case "DBIRTH":
      if (!s.born) violation("dbirth-before-nbirth", where);
      checkSeq(s, kind, seq, where);
      s.devices.set(device, registerAliases(s, device, metrics, where));
      break;
    case "DDEATH":
      if (!s.born) violation("ddeath-before-nbirth", where);
      checkSeq(s, kind, seq, where);
      if (!s.devices.has(device)) violation("ddeath-unborn", where);
      s.devices.delete(device);
      break;
    case "NDATA":
    case "DDATA": {
      if (!s.born) violation("data-before-nbirth", where);
      checkSeq(s, kind, seq, where);
      const known = kind === "NDATA" ? null : s.devices.get(device);
      if (kind === "DDATA" && !known) violation("ddata-unborn", where);
      for (const m of metrics) {
        if (m.name !== undefined) violation("data-name", `${where}: metric named ${m.name}`);
        const a = s.aliases.get(m.alias);
        if (!a || a.device !== (device || "")) {
          violation("data-alias", `${where}: alias ${m.alias} not born for this ${device ? "device" : "node"}`);
          continue;
        }
        m.name = a.name; // for the reader of the output: the name the birth gave
      }
      break;
    }
    default:
      return;
  }
  msg.wraps = s.wraps;
  out(msg);
}

let client = null;

function connect() {
  const ts = Date.now();
  client = mqtt.connect(broker, {
    clientId: `firebreak-testhost-${hostId}`,
    clean: true,
    reconnectPeriod: 0,
    will: { topic: stateTopic, payload: JSON.stringify({ online: false, timestamp: ts }), qos: 1, retain: true },
  });
  client.on("message", onMessage);
  client.on("error", (e) => console.error("mqtt:", e.message));
  client.on("connect", () => {
    client.subscribe([stateTopic, `spBv1.0/${group}/#`], { qos: 1 }, (err) => {
      if (err) {
        console.error("subscribe:", err.message);
        process.exit(1);
      }
      client.publish(stateTopic, JSON.stringify({ online: true, timestamp: ts }), { qos: 1, retain: true }, () => out({ ev: "online" }));
    });
  });
}

function offline(done) {
  const c = client;
  client = null;
  c.publish(stateTopic, JSON.stringify({ online: false, timestamp: Date.now() }), { qos: 1, retain: true }, () => {
    c.end(false, () => {
      out({ ev: "offline" });
      if (done) done();
    });
  });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  switch (cmd) {
    case "offline":
      if (client) offline();
      break;
    case "online":
      if (!client) connect();
      break;
    case "rebirth": {
      const payload = sparkplug.encodePayload({ timestamp: Date.now(), metrics: [{ name: "Node Control/Rebirth", type: "Boolean", value: true }] });
      client.publish(`spBv1.0/${group}/NCMD/${arg}`, Buffer.from(payload), { qos: 1 }, () => out({ ev: "rebirth-sent", node: arg }));
      break;
    }
    case "quit":
      if (client) offline(() => process.exit(0));
      else process.exit(0);
      break;
  }
});
rl.on("close", () => process.exit(0));

connect();
