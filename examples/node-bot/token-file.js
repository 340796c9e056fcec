'use strict';

const fsp = require('node:fs/promises');

// TokenFile hands out the token in a file that Vault Agent keeps fresh. Agent replaces the file
// (a new file renamed over the old one) well before the token in it expires, so the file is read
// again whenever it is a different file or has been modified: one stat per use, and no watcher
// that could lose track of a file renamed away under it.
class TokenFile {
  constructor(path) {
    this.path = path;
    this.stamp = '';
    this.token = '';
  }

  // current returns the token in the file now. It throws while the file is missing or empty,
  // which is the case until Vault Agent has rendered it the first time.
  async current() {
    let stat;
    try {
      stat = await fsp.stat(this.path);
    } catch (err) {
      throw new TokenFileError(`${this.path}: ${err.code || err.message}; has Vault Agent rendered it yet?`);
    }
    if (stampOf(stat) === this.stamp) {
      return this.token;
    }
    // Read through one file handle, so the stamp kept is that of the content read even if Agent
    // renames a newer file into place meanwhile.
    const file = await fsp.open(this.path, 'r');
    try {
      const [content, opened] = await Promise.all([file.readFile('utf8'), file.stat()]);
      const token = content.trim();
      if (token === '') {
        throw new TokenFileError(`${this.path} is empty`);
      }
      this.token = token;
      this.stamp = stampOf(opened);
      return token;
    } finally {
      await file.close();
    }
  }
}

function stampOf(stat) {
  return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
}

class TokenFileError extends Error {}

module.exports = { TokenFile, TokenFileError };
