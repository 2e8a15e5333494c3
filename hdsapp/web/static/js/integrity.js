// Checking the audit log's latest signed checkpoint in the browser.
//
// GET /api/v1/audit/checkpoint is a C2SP tlog-checkpoint inside a C2SP signed note:
//   origin \n tree size \n base64(root hash) \n [extension lines \n] \n — name base64(keyid4 || sig64) \n
// GET /api/v1/audit/verifier-key is name+hex(keyid)+base64(0x01 || Ed25519 public key).
// The signature is checked here with WebCrypto (Ed25519). A key served by the same server proves
// less than one the auditor pinned: the screen shows the key so it can be compared.

import { api } from "./api.js";

const DASH = "\u2014 ";

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function hex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function parseVerifierKey(vkey) {
  // name+hexid+base64: the base64 key may itself hold "+", so split at the first two only.
  const [name, keyIdHex, ...rest] = vkey.trim().split("+");
  const keyB64 = rest.join("+");
  const raw = fromBase64(keyB64 || "");
  if (!name || !/^[0-9a-f]{8}$/.test(keyIdHex || "") || raw.length !== 33 || raw[0] !== 1) {
    throw new Error("not an Ed25519 verifier key");
  }
  return { name, keyId: keyIdHex, publicKey: raw.slice(1), raw };
}

export function parseNote(note) {
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("not a signed note");
  const text = note.slice(0, split + 1);
  const signatures = note
    .slice(split + 2)
    .split("\n")
    .filter((line) => line.startsWith(DASH))
    .map((line) => {
      const [name, b64] = line.slice(DASH.length).split(" ");
      const bytes = fromBase64(b64 || "");
      return { name, keyId: hex(bytes.slice(0, 4)), signature: bytes.slice(4) };
    });
  const [origin, size, rootHash, ...extensions] = text.slice(0, -1).split("\n");
  if (!/^(0|[1-9]\d*)$/.test(size || "")) throw new Error("not a checkpoint");
  return { text, origin, size: Number(size), rootHash, extensions, signatures };
}

async function keyIdOf(name, raw) {
  // C2SP signed note: key ID = SHA-256(name || "\n" || 0x01 || key)[:4].
  const data = new Uint8Array([...new TextEncoder().encode(`${name}\n`), ...raw]);
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)).slice(0, 4));
}

/**
 * {state: "verified" | "invalid" | "unchecked" | "none", size, origin, keyName, keyId, signedAt}
 * "unchecked": this browser cannot verify Ed25519; "none": no checkpoint signed yet.
 */
export async function checkIntegrity() {
  let response;
  let vkey;
  try {
    [response, vkey] = await Promise.all([
      api.get("/api/v1/audit/checkpoint", { raw: true }),
      api.get("/api/v1/audit/verifier-key"),
    ]);
  } catch (error) {
    if (error && (error.status === 404 || error.status === 503)) return { state: "none" };
    throw error;
  }
  const note = await response.text();
  const signedAt =
    response.headers.get("x-checkpoint-signed-at") || response.headers.get("last-modified");
  const result = await verifyCheckpoint(note, String(vkey));
  return { ...result, signedAt: signedAt ? new Date(signedAt) : null };
}

/** Check a signed checkpoint note against a verifier key (both as the API serves them). */
export async function verifyCheckpoint(note, vkey) {
  const key = parseVerifierKey(vkey);
  const checkpoint = parseNote(note);
  const result = {
    state: "invalid",
    size: checkpoint.size,
    origin: checkpoint.origin,
    rootHash: checkpoint.rootHash,
    keyName: key.name,
    keyId: key.keyId,
    verifierKey: vkey.trim(),
  };
  if ((await keyIdOf(key.name, key.raw)) !== key.keyId) return result;
  const signature = checkpoint.signatures.find((s) => s.name === key.name && s.keyId === key.keyId);
  if (!signature) return result;
  let publicKey;
  try {
    publicKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, [
      "verify",
    ]);
  } catch {
    return { ...result, state: "unchecked" };
  }
  const valid = await crypto.subtle.verify(
    { name: "Ed25519" },
    publicKey,
    signature.signature,
    new TextEncoder().encode(checkpoint.text),
  );
  return { ...result, state: valid ? "verified" : "invalid" };
}
