// Sends CloudEvents with the official JavaScript SDK (npm `cloudevents`, pinned in package.json).
//
//   node producer.js URL binary|structured 1.0|0.3 < events.json
//
// stdin is a JSON array of event specs (tests/interop/cases.py). Each event becomes a `CloudEvent` and is
// serialized by the SDK's emitter (`emitterFor` with `HTTP.binary` / `HTTP.structured`). The transport is
// the SDK's documented extension point (a TransportFunction); ours does what the SDK's `httpTransport`
// does (POST, the message's headers, the body written as is) but also reports the status code, which
// `httpTransport` drops. One JSON line per request goes to stdout: ids, status, headers and body as sent.
//
// Batch mode: cloudevents 10.0 cannot send a batch. `emitterFor` throws "Unexpected transport mode" for
// anything but Mode.BINARY and Mode.STRUCTURED (dist/transport/emitter.js) and the HTTP binding has no
// batch serializer (dist/message/http/index.js exports binary, structured, toEvent, isEvent only).
"use strict";

const http = require("http");
const { CloudEvent, HTTP, Mode, emitterFor } = require("cloudevents");

function transport(url, record) {
  return (message) => new Promise((resolve, reject) => {
    const body = typeof message.body === "string" ? Buffer.from(message.body, "utf-8")
      : message.body === undefined ? Buffer.alloc(0)
      : Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
    record.headers = { ...message.headers };
    record.body_b64 = body.toString("base64");
    const req = http.request(url, { method: "POST", headers: message.headers }, (res) => {
      res.resume();
      res.on("end", () => { record.status = res.statusCode; resolve(res); });
    });
    req.on("error", reject);
    req.end(body);
  });
}

function build(spec, specversion, mode) {
  const props = { specversion, id: spec.id, source: spec.source, type: spec.type, ...(spec.extensions || {}) };
  for (const name of ["subject", "time", "datacontenttype"]) {
    if (spec[name] !== undefined && spec[name] !== null) props[name] = spec[name];
  }
  if (spec.data_b64 !== undefined && spec.data_b64 !== null) {
    const bytes = Buffer.from(spec.data_b64, "base64");
    const type = spec.datacontenttype || "";
    if (spec.data_json && mode === "structured") {
      // A JS user embeds a value: the SDK stringifies the whole event. JSON numbers become doubles here
      // (JSON.parse), which is JavaScript's own limit; the test compares against the body actually sent.
      props.data = JSON.parse(bytes.toString("utf-8"));
    } else if (spec.data_json || type.startsWith("text/")) {
      props.data = bytes.toString("utf-8");
    } else {
      props.data = new Uint8Array(bytes);
    }
  }
  return new CloudEvent(props);
}

async function main() {
  const [url, mode, specversion] = process.argv.slice(2);
  if (!url || !["binary", "structured"].includes(mode) || !["1.0", "0.3"].includes(specversion)) {
    process.stderr.write("usage: node producer.js URL binary|structured 1.0|0.3 < events.json\n" +
      "(cloudevents 10.0 has no batch mode; see the comment at the top)\n");
    process.exit(2);
  }
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const specs = JSON.parse(Buffer.concat(chunks).toString("utf-8"));
  for (const spec of specs) {
    const record = { ids: [spec.id], status: 0 };
    try {
      const emit = emitterFor(transport(url, record), { binding: HTTP, mode: mode === "binary" ? Mode.BINARY : Mode.STRUCTURED });
      await emit(build(spec, specversion, mode));
    } catch (err) {
      record.error = String(err && err.message || err);
    }
    process.stdout.write(JSON.stringify(record) + "\n");
  }
}

main().catch((err) => { process.stderr.write(`producer: ${err.stack || err}\n`); process.exit(1); });
