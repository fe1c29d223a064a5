// A webhook receiver in the style of Meta's sample apps: Express, raw body,
// HMAC-SHA256 check with timingSafeEqual, JSON.parse, 200.
// Usage: node express-receiver.js PORT APP_SECRET
const crypto = require("crypto");
const express = require("express");

const [port, secret] = process.argv.slice(2);
const app = express();
app.post("/webhooks/instagram", express.raw({ type: "*/*", limit: "4mb" }), (req, res) => {
  const header = req.get("x-hub-signature-256") || "";
  const expected = "sha256=" + crypto.createHmac("sha256", secret).update(req.body).digest("hex");
  const a = Buffer.from(header);
  const b = Buffer.from(expected);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return res.sendStatus(403);
  try {
    JSON.parse(req.body.toString("utf8"));
  } catch (e) {
    return res.sendStatus(400);
  }
  res.status(200).send("EVENT_RECEIVED");
});
app.listen(Number(port), "127.0.0.1", () => console.log("listening"));
