// Receives CloudEvents over HTTP and decodes them with the official JavaScript SDK (`HTTP.toEvent`).
//
//   node subscriber.js [PORT]     # 0 or nothing: a free port; the port is the first stdout line
//
// Every request is answered 200 and reported as one JSON line: the path, the raw Content-Type and body as
// they arrived, and what the SDK decoded: every attribute and extension, and the data as the SDK hands it
// to a user (a parsed JSON value, a string, or bytes). The body is given to the SDK as a string when it is
// valid UTF-8 (what a body parser yields for text and JSON) and as a Buffer otherwise.
"use strict";

const http = require("http");
const { HTTP } = require("cloudevents");

const utf8 = new TextDecoder("utf-8", { fatal: true });

function describeData(data) {
  if (data === undefined || data === null) return null;
  if (ArrayBuffer.isView(data)) {
    // The SDK decodes data_base64 into a Uint32Array with one element per byte
    // (dist/message/http/index.js parseStructured); Array.from keeps the byte values either way.
    const bytes = data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(Array.from(data));
    return { kind: "bytes", b64: bytes.toString("base64") };
  }
  if (typeof data === "string") return { kind: "text", b64: Buffer.from(data, "utf-8").toString("base64") };
  return { kind: "json", json: JSON.stringify(data) };
}

function decode(headers, raw) {
  let body;
  try { body = utf8.decode(raw); } catch { body = raw; }
  const decoded = HTTP.toEvent({ headers, body });
  const events = Array.isArray(decoded) ? decoded : [decoded];
  return events.map((event) => {
    const attributes = {};
    for (const [name, value] of Object.entries(event)) {
      if (name === "data" || name === "data_base64" || value === undefined) continue;
      attributes[name] = name === "time" ? new Date(value).toISOString() : String(value);
    }
    return { attributes, data: describeData(event.data) };
  });
}

const port = Number(process.argv[2] || 0);
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    const record = {
      path: req.url, content_type: req.headers["content-type"] ?? null, headers: req.headers,
      body_b64: raw.toString("base64"),
    };
    try {
      const events = decode(req.headers, raw);
      record.event = events[0];
      if (events.length > 1) record.more = events.slice(1);
    } catch (err) {
      record.error = String(err && err.message || err);
    }
    process.stdout.write(JSON.stringify(record) + "\n");
    res.writeHead(200);
    res.end();
  });
});
server.listen(port, "127.0.0.1", () => process.stdout.write(`${server.address().port}\n`));
