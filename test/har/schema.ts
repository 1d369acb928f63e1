/** HAR 1.2's JSON schema (har-schema) compiled with ajv: what every file we write must pass. */
import Ajv from 'ajv';

// JSON schemas, loaded as data: har-schema ships no types.
const draft06 = require('ajv/dist/refs/json-schema-draft-06.json') as object;
const schemas = require('har-schema') as Record<string, object>;

const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
ajv.addMetaSchema(draft06);
for (const schema of Object.values(schemas)) ajv.addSchema(schema);
const validate = ajv.getSchema('har.json#')!;

/** The schema's complaints about a document, one line each; [] when it is valid HAR 1.2. */
export function harSchemaErrors(doc: unknown): string[] {
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
