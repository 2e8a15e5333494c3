// Pro Santé Connect-shaped OpenID provider for hdsapp's tests.
//
// A real panva/oidc-provider (certified OpenID provider) with:
// - discovery also at {issuer}/.well-known/wallet-openid-configuration (PSC's path);
// - code flow only, PKCE (S256) required, scopes `openid scope_all`, acr `eidas1`;
// - PSC-shaped userinfo claims (SubjectNameID, SubjectRefPro.exercices[].codeProfession, ...);
// - non-interactive login: the account is chosen by `login_hint` (or by the control endpoint),
//   logged in and consented automatically, through the provider's own interaction machinery;
// - a loopback-only control endpoint `/__control` that tampers with the id_token of the next
//   token response, or the sub of the next userinfo response (negative tests of the relying
//   party).
//
// Configuration: JSON in the environment variable HDS_OIDC_PROVIDER_CONFIG, written by
// tests/support/oidc.py:
//   { "host": "127.0.0.1", "port": 12345, "issuer_path": "",
//     "clients": [ {client metadata}, ... ],
//     "accounts": { "doctor": { "sub": "...", ...userinfo claims }, ... } }
// The process exits when its standard input closes (the Python side died) or on SIGTERM.

import * as crypto from 'node:crypto';
import { createServer } from 'node:http';
import { promisify } from 'node:util';


const ACR = 'eidas1';
const TAMPER_MODES = new Set([
  'wrong_issuer',
  'wrong_audience',
  'expired',
  'issued_in_future',
  'alg_none',
  'hs256_with_public_key',
  'unknown_kid',
  'nonce_mismatch',
  'missing_acr',
  'wrong_acr',
  'es256_published_key',
]);
// Modes for the next userinfo response instead.
const USERINFO_MODES = new Set(['userinfo_wrong_sub']);
const ALL_MODES = new Set([...TAMPER_MODES, ...USERINFO_MODES]);

const config = JSON.parse(process.env.HDS_OIDC_PROVIDER_CONFIG ?? 'null');
if (!config || !Number.isInteger(config.port) || !Array.isArray(config.clients)) {
  process.stderr.write('HDS_OIDC_PROVIDER_CONFIG must be JSON with port, clients, accounts\n');
  process.exit(2);
}
const host = config.host ?? '127.0.0.1';
const issuerPath = (config.issuer_path ?? '').replace(/\/+$/, '');
if (issuerPath && !issuerPath.startsWith('/')) {
  process.stderr.write('issuer_path must start with "/"\n');
  process.exit(2);
}
const issuer = `http://${host}:${config.port}${issuerPath}`;

// ---------------------------------------------------------------------------------------------
// Keys, generated at each start. The private JWKs are handed to oidc-provider, and kept here to
// re-sign tampered ID tokens with the very key the provider publishes.

function kidFor(prefix, publicJwk) {
  const members = publicJwk.kty === 'RSA'
    ? { e: publicJwk.e, kty: 'RSA', n: publicJwk.n }
    : { crv: publicJwk.crv, kty: publicJwk.kty, x: publicJwk.x, y: publicJwk.y };
  return `${prefix}-${crypto.hash('sha256', JSON.stringify(members), 'base64url').slice(0, 16)}`;
}

const generateKeyPair = promisify(crypto.generateKeyPair);

async function makeKey(type, options, alg, prefix) {
  const { privateKey, publicKey } = await generateKeyPair(type, options);
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = kidFor(prefix, jwk);
  return {
    privateKey,
    publicKey,
    kid,
    alg,
    jwk: { ...jwk, kid, alg, use: 'sig' },
  };
}

// RSA key generation is the slow part of the start-up: it runs in libuv's thread pool while
// oidc-provider is loaded, and the never-published key (for `unknown_kid`) is not waited for.
const keysReady = Promise.all([
  makeKey('rsa', { modulusLength: 2048 }, 'RS256', 'rsa'),
  makeKey('ec', { namedCurve: 'P-256' }, 'ES256', 'ec'),
]);
const strangerReady = makeKey('rsa', { modulusLength: 2048 }, 'RS256', 'unknown');
const { default: Provider, interactionPolicy } = await import('oidc-provider');
const [rsa, ec] = await keysReady;
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });

// ---------------------------------------------------------------------------------------------
// Accounts (PSC userinfo claims), keyed by the test's name for them ("doctor", "nurse", ...).

const accounts = config.accounts ?? {};
const accountsBySub = new Map();
for (const [key, claims] of Object.entries(accounts)) {
  if (typeof claims.sub !== 'string' || !claims.sub) {
    process.stderr.write(`account ${key} has no sub\n`);
    process.exit(2);
  }
  accountsBySub.set(claims.sub, { key, claims });
}
const scopeAllClaims = [...new Set(
  Object.values(accounts).flatMap((claims) => Object.keys(claims)).filter((name) => name !== 'sub'),
)].sort();

function findAccountByHint(hint) {
  if (hint === undefined || hint === null || hint === '') {
    return undefined;
  }
  if (Object.hasOwn(accounts, hint)) {
    return { key: hint, claims: accounts[hint] };
  }
  for (const entry of accountsBySub.values()) {
    const { claims } = entry;
    if (claims.sub === hint || claims.SubjectNameID === hint || claims.preferred_username === hint) {
      return entry;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Control state (set by POST /__control).

const state = {
  mode: null, // one of TAMPER_MODES or null
  persistent: false,
  account: null, // default account key when the request has no login_hint
  applied: [], // tamper modes applied so far, in order
  tokenResponses: 0, // token responses that carried an id_token
};

// ---------------------------------------------------------------------------------------------
// ID token rewriting.

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function decodeJwt(token) {
  const [header, payload] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')),
  };
}

function signJwt(header, payload, alg, key) {
  const signingInput = `${b64json(header)}.${b64json(payload)}`;
  let signature;
  switch (alg) {
    case 'none':
      return `${signingInput}.`;
    case 'RS256':
      signature = crypto.sign('sha256', Buffer.from(signingInput), key);
      break;
    case 'ES256':
      signature = crypto.sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
      break;
    case 'HS256':
      signature = crypto.createHmac('sha256', key).update(signingInput).digest();
      break;
    default:
      throw new Error(`unsupported alg ${alg}`);
  }
  return `${signingInput}.${signature.toString('base64url')}`;
}

async function tamper(idToken, mode) {
  const { header, payload } = decodeJwt(idToken);
  const t = now();
  let alg = 'RS256';
  let key = rsa.privateKey;
  const outHeader = { ...header, alg: 'RS256', kid: rsa.kid };
  const out = { ...payload };
  switch (mode) {
    case 'wrong_issuer':
      out.iss = 'https://attacker.invalid/auth/realms/esante-wallet';
      break;
    case 'wrong_audience':
      out.aud = 'another-relying-party';
      if ('azp' in out) out.azp = 'another-relying-party';
      break;
    case 'expired':
      out.iat = t - 7200;
      out.exp = t - 3600;
      break;
    case 'issued_in_future':
      out.iat = t + 3600;
      out.exp = t + 7200;
      break;
    case 'alg_none':
      alg = 'none';
      outHeader.alg = 'none';
      delete outHeader.kid;
      break;
    case 'hs256_with_public_key':
      alg = 'HS256';
      outHeader.alg = 'HS256';
      key = Buffer.from(rsaPublicPem, 'utf8');
      break;
    case 'unknown_kid': {
      const stranger = await strangerReady;
      outHeader.kid = stranger.kid;
      key = stranger.privateKey;
      break;
    }
    case 'nonce_mismatch':
      out.nonce = `tampered-${crypto.randomBytes(9).toString('base64url')}`;
      break;
    case 'missing_acr':
      delete out.acr;
      break;
    case 'wrong_acr':
      out.acr = 'eidas0';
      break;
    case 'es256_published_key':
      alg = 'ES256';
      outHeader.alg = 'ES256';
      outHeader.kid = ec.kid;
      key = ec.privateKey;
      break;
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
  return signJwt(outHeader, out, alg, key);
}

// ---------------------------------------------------------------------------------------------
// The provider.

const htmlEscape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// RP-initiated logout without a human: the confirmation form says "yes" and submits itself
// (a browser runs the script; tests/support/oidc.py's end_session() posts the form).
async function logoutSource(ctx, form) {
  const action = /action="([^"]*)"/.exec(form)?.[1] ?? '';
  const xsrf = /name="xsrf" value="([^"]*)"/.exec(form)?.[1] ?? '';
  ctx.type = 'html';
  ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Logout</title></head>
<body>
<form id="op.logoutForm" method="post" action="${htmlEscape(action)}">
<input type="hidden" name="xsrf" value="${htmlEscape(xsrf)}"/>
<input type="hidden" name="logout" value="yes"/>
<noscript><button type="submit">Sign out</button></noscript>
</form>
<script>document.forms[0].submit()</script>
</body></html>`;
}

const policy = interactionPolicy.base();

const provider = new Provider(issuer, {
  clients: config.clients,
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  responseTypes: ['code'],
  pkce: { required: () => true },
  scopes: ['openid', 'scope_all'],
  acrValues: [ACR],
  claims: {
    acr: null,
    auth_time: null,
    sid: null,
    iss: null,
    openid: ['sub'],
    scope_all: scopeAllClaims,
  },
  jwks: { keys: [rsa.jwk, ec.jwk] },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'ES256'],
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    dPoP: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource },
    userinfo: { enabled: true },
    jwtUserinfo: { enabled: false },
  },
  interactions: {
    policy,
    url: (_ctx, interaction) => `${issuerPath}/interaction/${interaction.uid}`,
  },
  async findAccount(_ctx, sub) {
    const entry = accountsBySub.get(sub);
    if (!entry) {
      return undefined;
    }
    return {
      accountId: sub,
      async claims() {
        return structuredClone(entry.claims);
      },
    };
  },
  async renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

const interactionPattern = /^\/interaction\/([A-Za-z0-9_-]+)$/;
const tokenPath = '/token';
const userinfoPath = '/me';

function consumeMode() {
  const { mode } = state;
  state.applied.push(mode);
  if (!state.persistent) {
    state.mode = null;
  }
  return mode;
}

provider.use(async (ctx, next) => {
  // No single sign-on: every authorization request starts without a provider session, so the
  // account is always the one chosen for this request (login_hint or control), never a previous
  // one. Only the initial request is affected; the resume step keeps its cookies.
  if (ctx.path === '/auth' && ctx.headers.cookie) {
    const sessionCookie = provider.cookieName('session');
    ctx.request.headers.cookie = ctx.headers.cookie
      .split(/;\s*/)
      .filter((pair) => {
        const name = pair.split('=', 1)[0];
        return name !== sessionCookie && name !== `${sessionCookie}.sig`;
      })
      .join('; ');
  }

  const match = ctx.method === 'GET' ? interactionPattern.exec(ctx.path) : null;
  if (match) {
    await interact(ctx);
    return;
  }

  await next();

  if (
    ctx.path === tokenPath
    && ctx.method === 'POST'
    && ctx.status === 200
    && ctx.body
    && typeof ctx.body === 'object'
    && typeof ctx.body.id_token === 'string'
  ) {
    state.tokenResponses += 1;
    if (TAMPER_MODES.has(state.mode)) {
      ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token, consumeMode()) };
    }
  }

  if (
    ctx.path === userinfoPath
    && ctx.status === 200
    && USERINFO_MODES.has(state.mode)
    && ctx.body
    && typeof ctx.body === 'object'
  ) {
    consumeMode(); // userinfo_wrong_sub: the sub of another account, all else unchanged
    const other = [...accountsBySub.keys()].find((sub) => sub !== ctx.body.sub)
      ?? `f:tampered:${ctx.body.sub}`;
    ctx.body = { ...ctx.body, sub: other };
  }
});

// The automatic "user": logs in the chosen account with acr eidas1 (what PSC answers) and
// consents to what the client asked, exactly as the development interactions would on submit.
async function interact(ctx) {
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session, grantId } = details;

  if (prompt.name === 'login') {
    let account = findAccountByHint(params.login_hint);
    if (account === null) {
      await provider.interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: `unknown login_hint ${JSON.stringify(params.login_hint)}`,
      }, { mergeWithLastSubmission: false });
      ctx.respond = false;
      return;
    }
    if (account === undefined) {
      const key = state.account ?? Object.keys(accounts)[0];
      account = { key, claims: accounts[key] };
    }
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: account.claims.sub, acr: ACR, remember: false },
    }, { mergeWithLastSubmission: false });
    ctx.respond = false;
    return;
  }

  if (prompt.name === 'consent') {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) {
      grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    }
    if (prompt.details.missingOIDCClaims) {
      grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    }
    if (prompt.details.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(prompt.details.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    const result = { consent: { grantId: await grant.save() } };
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.respond = false;
    return;
  }

  ctx.status = 501;
  ctx.body = { error: 'not_implemented', error_description: `prompt ${prompt.name}` };
}

// ---------------------------------------------------------------------------------------------
// HTTP server: loopback control endpoint, issuer path, then the provider.

function isLoopback(address) {
  return address === '::1' || /^(::ffff:)?127\./.test(address ?? '');
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

async function publicState() {
  return {
    issuer,
    mode: state.mode,
    persistent: state.persistent,
    account: state.account,
    applied: state.applied,
    token_responses: state.tokenResponses,
    modes: [...ALL_MODES, 'reset'],
    accounts: Object.keys(accounts),
    rsa_kid: rsa.kid,
    ec_kid: ec.kid,
    unknown_kid: (await strangerReady).kid,
    rsa_public_pem: rsaPublicPem,
  };
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

async function control(req, res) {
  if (!isLoopback(req.socket.remoteAddress)) {
    sendJson(res, 403, { error: 'loopback only' });
    return;
  }
  if (req.method === 'GET') {
    sendJson(res, 200, await publicState());
    return;
  }
  if (req.method !== 'POST') {
    sendJson(res, 405, { error: 'GET or POST' });
    return;
  }
  let body;
  try {
    body = await readJson(req);
  } catch (err) {
    sendJson(res, 400, { error: `bad JSON: ${err.message}` });
    return;
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    sendJson(res, 400, { error: 'expected a JSON object' });
    return;
  }
  const { mode, persistent = false, account } = body;
  if (mode !== undefined && mode !== 'reset' && !ALL_MODES.has(mode)) {
    sendJson(res, 400, { error: `unknown mode ${JSON.stringify(mode)}`, modes: [...ALL_MODES, 'reset'] });
    return;
  }
  if (account !== undefined && account !== null && findAccountByHint(account) == null) {
    sendJson(res, 400, { error: `unknown account ${JSON.stringify(account)}` });
    return;
  }
  if (typeof persistent !== 'boolean') {
    sendJson(res, 400, { error: 'persistent must be a boolean' });
    return;
  }
  if (mode === 'reset') {
    state.mode = null;
    state.persistent = false;
    state.account = null;
    state.applied = [];
  } else if (mode !== undefined) {
    state.mode = mode;
    state.persistent = persistent;
  }
  if (account !== undefined) {
    state.account = account === null ? null : findAccountByHint(account).key;
  }
  sendJson(res, 200, await publicState());
}

const handle = provider.callback();

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://placeholder');
  if (url.pathname === '/__control') {
    control(req, res).catch((err) => sendJson(res, 500, { error: String(err) }));
    return;
  }
  if (issuerPath) {
    if (url.pathname !== issuerPath && !url.pathname.startsWith(`${issuerPath}/`)) {
      sendJson(res, 404, { error: 'not_found', error_description: `outside ${issuerPath}` });
      return;
    }
    req.url = req.url.slice(issuerPath.length) || '/';
  }
  // PSC publishes its discovery document at this path too.
  if (req.url.split('?', 1)[0] === '/.well-known/wallet-openid-configuration') {
    req.url = '/.well-known/openid-configuration';
  }
  // How oidc-provider learns its mount path (as under Express): the path before req.url.
  req.originalUrl = `${issuerPath}${req.url}`;
  handle(req, res);
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();

server.listen(config.port, host, () => {
  process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);
});
