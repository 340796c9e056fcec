'use strict';

// Runs Lark's official Node SDK against the emulator for every call it makes that the emulator
// serves, and checks that the SDK gets what it expects from real Lark. e2e/nodebot_test.go runs it
// with NODE_PATH pointing at the node_modules of examples/node-bot.
//
// Environment: LARK_BASE_URL (the emulator), LARK_APP_ID, LARK_APP_SECRET, LARK_RECEIVE_ID (an
// open_id of the app), REDIRECT_URI. Prints "ok <check>" per passed check, JSON on the last line.

const assert = require('node:assert/strict');
const lark = require('@larksuiteoapi/node-sdk');

const base = process.env.LARK_BASE_URL;
const appId = process.env.LARK_APP_ID;
const appSecret = process.env.LARK_APP_SECRET;
const receiveId = process.env.LARK_RECEIVE_ID;
const redirectUri = process.env.REDIRECT_URI;

// The SDK's logs stay out of the output: SDK 1.74.0 logs a refused client.accessToken request as the
// whole axios error, request body (app secret, refresh token) included. (LoggerLevel.fatal, 0, is
// taken for "unset" and gives info, so only a logger of our own silences it.)
const quiet = { error() {}, warn() {}, info() {}, debug() {}, trace() {} };

const client = new lark.Client({
  appId,
  appSecret,
  domain: base,
  oauthBaseUrl: base,
  logger: quiet,
});

// perCall is configured like examples/node-bot: it never fetches a token, each call carries one.
// (Without disableTokenCache the SDK replaces a token passed with withTenantToken by its own.)
const perCall = new lark.Client({
  appId,
  appSecret,
  disableTokenCache: true,
  domain: base,
  logger: quiet,
});

function ok(check) {
  console.log(`ok ${check}`);
}

// authorize plays the user's browser on the authorize page and returns the code it redirects with.
async function authorize(scope) {
  const q = new URLSearchParams({ client_id: appId, response_type: 'code', redirect_uri: redirectUri, scope });
  const res = await fetch(`${base}/open-apis/authen/v1/authorize?${q}`, { redirect: 'manual' });
  assert.equal(res.status, 302);
  const code = new URL(res.headers.get('location')).searchParams.get('code');
  assert.ok(code, 'no code in the redirect');
  return code;
}

// larkCode runs an SDK call that Lark answers with an error on HTTP 4xx, which axios throws.
async function larkCode(call) {
  try {
    const res = await call();
    return res.code;
  } catch (err) {
    assert.ok(err.response, `no HTTP answer: ${err.message}`);
    return err.response.data.code;
  }
}

async function main() {
  const sent = [];
  const text = (t) => ({ params: { receive_id_type: 'open_id' }, data: { receive_id: receiveId, msg_type: 'text', content: JSON.stringify({ text: t }) } });

  // 1. The SDK's own token manager: tenant_access_token/internal, then the message.
  let res = await client.im.v1.message.create(text('sdk token manager'));
  assert.equal(res.code, 0);
  assert.match(res.data.message_id, /^om_/);
  assert.equal(res.data.sender.sender_type, 'app');
  sent.push(res.data.message_id);
  ok('im.v1.message.create with the SDK fetching the tenant token (auth/v3/tenant_access_token/internal)');

  // 2. The same with a token passed per request, as the bot does, and the v1 alias im.message.create.
  const tat = await client.auth.v3.tenantAccessToken.internal({ data: { app_id: appId, app_secret: appSecret } });
  assert.equal(tat.code, 0);
  assert.ok(tat.expire > 0);
  res = await perCall.im.message.create(text('withTenantToken'), lark.withTenantToken(tat.tenant_access_token));
  assert.equal(res.code, 0);
  sent.push(res.data.message_id);
  ok('im.message.create with lark.withTenantToken');

  // Errors the bot must tell apart: a bad receiver and a bad token, both HTTP 400.
  assert.equal(await larkCode(() => client.im.v1.message.create({ ...text('x'), data: { ...text('x').data, receive_id: 'ou_nobody' } })), 230034);
  assert.equal(await larkCode(() => perCall.im.v1.message.create(text('x'), lark.withTenantToken('t-g0000'))), 99991663);
  ok('im.v1.message.create errors: 230034, 99991663');

  const aat = await client.auth.v3.appAccessToken.internal({ data: { app_id: appId, app_secret: appSecret } });
  assert.equal(aat.code, 0);
  assert.ok(aat.app_access_token);
  ok('auth.v3.appAccessToken.internal');

  // 3. The SDK's user token helper: authen v1 OIDC code exchange and refresh.
  const code1 = await authorize('auth:user.id:read');
  const info = await client.userAccessToken.initWithCode({ alice: code1 });
  assert.match(info.alice.token, /^u-/);
  assert.match(info.alice.refreshToken, /^ur-/);
  assert.equal(await client.userAccessToken.get('alice'), info.alice.token);
  ok('userAccessToken.initWithCode (authen/v1/oidc/access_token)');

  const me = await client.authen.v1.userInfo.get({}, lark.withUserAccessToken(info.alice.token));
  assert.equal(me.code, 0);
  assert.match(me.data.open_id, /^ou_/);
  ok('authen.v1.userInfo.get with lark.withUserAccessToken (v1 token)');

  res = await client.im.v1.message.create(text('as the user'), lark.withUserAccessToken(info.alice.token));
  assert.equal(res.code, 0);
  assert.equal(res.data.sender.sender_type, 'user');
  sent.push(res.data.message_id);
  ok('im.v1.message.create with lark.withUserAccessToken');

  let r = await client.authen.oidcRefreshAccessToken.create({ data: { grant_type: 'refresh_token', refresh_token: info.alice.refreshToken } });
  assert.equal(r.code, 0);
  assert.notEqual(r.data.refresh_token, info.alice.refreshToken);
  assert.ok(r.data.refresh_expires_in > 0);
  r = await client.authen.oidcRefreshAccessToken.create({ data: { grant_type: 'refresh_token', refresh_token: info.alice.refreshToken } });
  assert.equal(r.code, 20038); // on HTTP 200: the SDK hands the body back
  ok('authen.oidcRefreshAccessToken.create rotates; reuse is 20038');

  // 4. The older v1 pair, which adds the user's profile.
  r = await client.authen.accessToken.create({ data: { grant_type: 'authorization_code', code: await authorize('') } });
  assert.equal(r.code, 0);
  assert.equal(r.data.open_id, me.data.open_id);
  r = await client.authen.refreshAccessToken.create({ data: { grant_type: 'refresh_token', refresh_token: r.data.refresh_token } });
  assert.equal(r.code, 0);
  assert.match(r.data.access_token, /^u-/);
  r = await client.authen.oidcAccessToken.create({ data: { grant_type: 'authorization_code', code: 'no-such-code' } });
  assert.equal(r.code, 20003);
  ok('authen.accessToken / refreshAccessToken; bad code 20003');

  // 5. The OAuth token endpoint (v3 path) through client.accessToken.
  const v3 = await client.accessToken.retrieveByAuthorizationCode({ code: await authorize('auth:user.id:read offline_access'), redirectUri });
  assert.ok(v3.accessToken.startsWith('eyJ'));
  assert.ok(v3.refreshToken);
  assert.equal(v3.scope, 'auth:user.id:read offline_access');
  const v3b = await client.accessToken.refresh({ refreshToken: v3.refreshToken });
  assert.notEqual(v3b.refreshToken, v3.refreshToken);
  await assert.rejects(client.accessToken.refresh({ refreshToken: v3.refreshToken }), (err) => {
    assert.equal(err.statusCode, 400);
    assert.equal(err.code, 20073);
    assert.equal(err.error, 'invalid_grant');
    return true;
  });
  ok('accessToken.retrieveByAuthorizationCode / refresh (oauth/v3/token); reuse is 20073');

  const me2 = await client.authen.v1.userInfo.get({}, lark.withUserAccessToken(v3b.accessToken));
  assert.equal(me2.code, 0);
  ok('authen.v1.userInfo.get with a v3 token');

  console.log(JSON.stringify({ sent }));
}

main().catch((err) => {
  console.error(`FAILED: ${err.stack || err}`);
  process.exit(1);
});
