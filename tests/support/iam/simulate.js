// Reads a JSON list of simulations on stdin; prints one overall result per line
// ("Allowed", "ImplicitlyDenied", "ExplicitlyDenied", or "error: ..." when a simulation is malformed).
//
// The validating simulator drops context keys of the form service:Key:<name> (such as
// kms:EncryptionContext:<key>) as unknown. A request that carries one is validated as usual and
// then decided by the simulator's core engine with its context as given.
const path = require('path');
const { runSimulation } = require('@cloud-copilot/iam-simulate');
const { loadPolicy } = require('@cloud-copilot/iam-policy');

const dist = path.join(__dirname, 'node_modules/@cloud-copilot/iam-simulate/dist/cjs');
const { authorize } = require(path.join(dist, 'core_engine/CoreSimulatorEngine.js'));
const { AwsRequestImpl } = require(path.join(dist, 'request/request.js'));
const { RequestContextImpl } = require(path.join(dist, 'requestContext.js'));
const { DiscoveryContextKeyConstraints } = require(path.join(dist, 'context_keys/discoveryContextKeyConstraints.js'));

function decideAsGiven(sim) {
  const request = new AwsRequestImpl(sim.request.principal, sim.request.resource, sim.request.action,
    new RequestContextImpl(sim.request.contextVariables));
  const analysis = authorize({
    request,
    sessionPolicy: sim.sessionPolicy ? loadPolicy(sim.sessionPolicy, { name: 'session' }) : undefined,
    identityPolicies: sim.identityPolicies.map((p) => loadPolicy(p.policy, { name: p.name })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: sim.resourcePolicy ? loadPolicy(sim.resourcePolicy, { name: 'resource' }) : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: { simulationMode: 'Strict', discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]) },
    serviceSettings: { s3: {} },
  });
  return analysis.result;
}

let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  for (const simulation of JSON.parse(input)) {
    const result = await runSimulation(simulation, {});
    if (result.resultType === 'error') {
      console.log('error: ' + JSON.stringify(result.errors));
    } else if (((result.result && result.result.ignoredContextKeys) || []).length === 0) {
      console.log(result.overallResult);
    } else {
      console.log(decideAsGiven(simulation));
    }
  }
});
