#!/usr/bin/env node
'use strict';

// Lark's official MCP server (@larksuiteoapi/lark-mcp) on the stdio transport, acting as one Lark
// user with the user access token Vault Agent keeps fresh in a file. The token is read from the
// file at every tool call, so a rotation takes effect on the next call: the MCP client keeps its
// session, nothing restarts, and nobody logs in again. This process holds no app secret and no
// refresh token; Vault keeps both.
//
// Settings (environment):
//   LARK_APP_ID           the app the token belongs to (cli_…)                      required
//   LARK_USER_TOKEN_FILE  the file Vault Agent renders the user access token into    required
//   LARK_DOMAIN           Lark's base URL (https://open.larksuite.com, https://open.feishu.cn
//                         or an emulator's address)                                   default https://open.feishu.cn
//   LARK_MCP_TOOLS        tools or presets to offer, separated by commas or spaces   default preset.default
//   LARK_MCP_TOOL_CASE    snake, camel, kebab or dot                                 default snake
//   LARK_MCP_LANGUAGE     en or zh (tool descriptions)                               default en
//
// stdout carries the MCP protocol only; this script writes its own messages to stderr.

const fsp = require('node:fs/promises');
// The package's main module also runs its command line (it parses process.argv when loaded), so
// the tool layer is loaded on its own.
const { LarkMcpTool, presetTools } = require('@larksuiteoapi/lark-mcp/dist/mcp-tool');
const lark = require('@larksuiteoapi/node-sdk');
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js');
const { StdioServerTransport } = require('@modelcontextprotocol/sdk/server/stdio.js');

function setting(name, fallback) {
  const v = (process.env[name] || '').trim();
  if (v !== '') {
    return v;
  }
  if (fallback === undefined) {
    process.stderr.write(`lark-mcp-vault: ${name} is not set\n`);
    process.exit(2);
  }
  return fallback;
}

function list(value) {
  return value.split(/[\s,]+/).filter((s) => s !== '');
}

const appId = setting('LARK_APP_ID');
const tokenFile = setting('LARK_USER_TOKEN_FILE');
const domain = setting('LARK_DOMAIN', 'https://open.feishu.cn');
const language = setting('LARK_MCP_LANGUAGE', 'en');
const toolNameCase = setting('LARK_MCP_TOOL_CASE', 'snake');

// Presets (preset.default, preset.im.default, …) expand to their tool names, as the package's own
// command line does.
let tools = list(setting('LARK_MCP_TOOLS', 'preset.default'));
tools = [...new Set(tools.flatMap((t) => presetTools[t] || [t]))];

// readToken returns the token in the file now, or undefined while the file is missing or empty
// (before Agent's first render). With no token the package answers the tool call with its
// "user_access_token is invalid or expired" error instead of calling Lark.
async function readToken() {
  try {
    const token = (await fsp.readFile(tokenFile, 'utf8')).trim();
    return token === '' ? undefined : token;
  } catch (err) {
    process.stderr.write(`lark-mcp-vault: ${tokenFile}: ${err.code || err.message}; has Vault Agent rendered it yet?\n`);
    return undefined;
  }
}

// The Lark client never needs an app or tenant token here: every tool runs with the user's token
// (token mode user_access_token). The SDK insists on a way to get one anyway, so it gets one that
// refuses, loudly, instead of an app secret this process should not hold; and no token cache, so
// it never puts a token of its own in place of the one passed with the call.
const client = new lark.Client({
  appId,
  domain,
  disableTokenCache: true,
  loggerLevel: lark.LoggerLevel.error,
  logger: { error: () => {}, warn: () => {}, info: () => {}, debug: () => {}, trace: () => {} },
  clientAssertionProvider: {
    retrieveToken() {
      throw new Error('lark-mcp-vault holds no app secret: only tools that run as the user are offered');
    },
  },
});

const larkTools = new LarkMcpTool({
  appId,
  client,
  domain,
  tokenMode: 'user_access_token',
  toolsOptions: { allowTools: tools, language },
});
larkTools.updateUserAccessToken({ getter: readToken });

if (larkTools.getTools().length === 0) {
  process.stderr.write(`lark-mcp-vault: none of ${tools.join(', ')} can run with a user access token\n`);
  process.exit(2);
}

const server = new McpServer({ name: 'lark-mcp-vault', version: '0.1.0' });
larkTools.registerMcpServer(server, { toolNameCase });

server.connect(new StdioServerTransport()).catch((err) => {
  process.stderr.write(`lark-mcp-vault: ${err.message}\n`);
  process.exit(1);
});
