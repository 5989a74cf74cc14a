// Loaded by path (DataConverter.failureConverterPath) by workers, clients and the workflow bundle,
// which is why it is CommonJS: the SDK `require`s it, and Node 20 cannot require TypeScript or ES
// modules. Failure messages and stack traces are moved into an encoded attribute, which the payload
// codec (platform/payload-codec.ts) encrypts like any other payload; a message can name an account
// (`wallet:<merchant>:<customer>:...`) or repeat what an activity was given.
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
