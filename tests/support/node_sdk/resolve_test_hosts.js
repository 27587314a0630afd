// Preloaded with `node --require`: host names under .cloudrec.test resolve to 127.0.0.1, in this
// process only (the tests call the local stack by name without editing /etc/hosts).
'use strict';
const dns = require('dns');

const lookup = dns.lookup;
dns.lookup = function lookupTestHosts(hostname, ...rest) {
  const name = typeof hostname === 'string' && hostname.endsWith('.cloudrec.test') ? '127.0.0.1' : hostname;
  return lookup.call(this, name, ...rest);
};
