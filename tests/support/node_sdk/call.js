// Calls cloudrec with the official Node.js SDK, as a customer's backend does.
//
// Reads one call per line on stdin:
//   {"endpoint": "127.0.0.1:8000", "secretId": "...", "secretKey": "...", "region": "ap-guangzhou",
//    "action": "DescribeCloudRecording", "params": {"SdkAppId": 1400000001, "TaskId": "..."},
//    "method": "GET"}   (optional: the SDK's reqMethod, POST by default)
// and answers each, in order, with one line: {"response": {...}} or
// {"error": {"code": "...", "message": "...", "requestId": "..."}}.
'use strict';
const readline = require('readline');
const { trtc } = require('tencentcloud-sdk-nodejs/tencentcloud/services/trtc');

async function call(request) {
  const client = new trtc.v20190722.Client({
    credential: { secretId: request.secretId, secretKey: request.secretKey },
    region: request.region,
    profile: { httpProfile: { endpoint: request.endpoint, protocol: 'http://', reqTimeout: 10,
                              reqMethod: request.method || 'POST' } },
  });
  try {
    return { response: await client[request.action](request.params) };
  } catch (err) {
    return { error: { code: err.code || null, message: String(err.message), requestId: err.requestId || null } };
  }
}

(async () => {
  // one call at a time: a call may use what the one before answered
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim()) {
      process.stdout.write(JSON.stringify(await call(JSON.parse(line))) + '\n');
    }
  }
})();
