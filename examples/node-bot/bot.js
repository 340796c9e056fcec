'use strict';

// node-bot: a small HTTP service that sends Lark messages with Lark's official Node SDK and holds
// no app secret. Vault keeps the secret; Vault Agent renders the app's tenant access token (and a
// user access token) into files; every call reads its token from the file, so a token Agent has
// rotated is picked up by the next call. See README.md.
//
//   POST /notify  {"text":"…","receive_id":"…"?,"uuid":"…"?}  send a text message as the app
//   GET  /me                                                 the user of the user token (user_info)
//   GET  /healthz

const http = require('node:http');
const lark = require('@larksuiteoapi/node-sdk');
const { TokenFile, TokenFileError } = require('./token-file');

const config = {
  // The app id is not a secret; the SDK wants it to name the app.
  appId: requiredEnv('LARK_APP_ID'),
  // Lark's OpenAPI host: https://open.feishu.cn (Feishu) or https://open.larksuite.com (Lark).
  baseUrl: process.env.LARK_BASE_URL || 'https://open.feishu.cn',
  tenantTokenFile: process.env.LARK_TENANT_TOKEN_FILE || '/run/lark/tenant-token',
  userTokenFile: process.env.LARK_USER_TOKEN_FILE || '',
  receiveIdType: process.env.LARK_RECEIVE_ID_TYPE || 'open_id',
  receiveId: process.env.LARK_RECEIVE_ID || '',
  listen: process.env.BOT_LISTEN || '127.0.0.1:8080',
};

const client = new lark.Client({
  appId: config.appId,
  // No appSecret: the SDK requires some credential, so it gets one that refuses to produce
  // anything. It is never asked: with disableTokenCache the SDK fetches no token of its own and
  // every call below carries the token Vault Agent rendered.
  clientAssertionProvider: {
    retrieveToken() {
      throw new Error('node-bot fetches no Lark tokens: Vault Agent renders them');
    },
  },
  disableTokenCache: true,
  domain: config.baseUrl,
  loggerLevel: lark.LoggerLevel.warn,
});

const tenantToken = new TokenFile(config.tenantTokenFile);
const userToken = config.userTokenFile ? new TokenFile(config.userTokenFile) : null;

class LarkError extends Error {
  constructor(code, msg) {
    super(`Lark answered code ${code}: ${msg}`);
    this.code = code;
  }
}

// callLark runs one SDK call and turns Lark's error answers, on HTTP 200 or 4xx alike, into a
// LarkError that carries Lark's code and message (never the request, which holds the token).
async function callLark(call) {
  let res;
  try {
    res = await call();
  } catch (err) {
    const body = err.response && err.response.data;
    if (body && typeof body === 'object' && body.code !== undefined) {
      throw new LarkError(body.code, body.msg);
    }
    throw new Error(`calling Lark: ${err.message}`);
  }
  if (res.code !== 0) {
    throw new LarkError(res.code, res.msg);
  }
  return res.data;
}

async function notify({ text, receiveId, uuid }) {
  const token = await tenantToken.current();
  const data = await callLark(() =>
    client.im.v1.message.create(
      {
        params: { receive_id_type: config.receiveIdType },
        data: { receive_id: receiveId, msg_type: 'text', content: JSON.stringify({ text }), uuid },
      },
      lark.withTenantToken(token),
    ),
  );
  return data.message_id;
}

async function me() {
  const token = await userToken.current();
  const data = await callLark(() => client.authen.v1.userInfo.get({}, lark.withUserAccessToken(token)));
  return { name: data.name, open_id: data.open_id };
}

async function route(req, body) {
  if (req.method === 'GET' && req.url === '/healthz') {
    return [200, { ok: true }];
  }
  if (req.method === 'GET' && req.url === '/me') {
    if (!userToken) {
      return [404, { error: 'no user token: set LARK_USER_TOKEN_FILE' }];
    }
    return [200, await me()];
  }
  if (req.method === 'POST' && req.url === '/notify') {
    let msg;
    try {
      msg = JSON.parse(body);
    } catch {
      return [400, { error: 'the body must be JSON: {"text":"…"}' }];
    }
    const receiveId = msg.receive_id || config.receiveId;
    if (typeof msg.text !== 'string' || msg.text === '' || !receiveId) {
      return [400, { error: 'need "text", and "receive_id" unless LARK_RECEIVE_ID is set' }];
    }
    const messageId = await notify({ text: msg.text, receiveId, uuid: msg.uuid });
    console.log(`notify: sent ${messageId}`);
    return [200, { message_id: messageId }];
  }
  return [404, { error: 'not found' }];
}

const maxBody = 64 << 10;

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > maxBody) {
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', async () => {
    let status, reply;
    try {
      [status, reply] = await route(req, Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      // A token file Agent has not rendered yet is a temporary state; Lark's refusals are not ours.
      status = err instanceof TokenFileError ? 503 : 502;
      reply = { error: err.message };
      console.error(`${req.method} ${req.url}: ${err.message}`);
    }
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(reply));
  });
});

const [host, port] = splitHostPort(config.listen);
server.listen(port, host, () => {
  const addr = server.address();
  console.log(`node-bot listening on http://${addr.address}:${addr.port} (app ${config.appId}, Lark at ${config.baseUrl})`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`node-bot: ${name} must be set`);
    process.exit(2);
  }
  return value;
}

function splitHostPort(listen) {
  const i = listen.lastIndexOf(':');
  if (i < 0) {
    return ['127.0.0.1', Number(listen)];
  }
  return [listen.slice(0, i).replace(/^\[|\]$/g, ''), Number(listen.slice(i + 1))];
}
