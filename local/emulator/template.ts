/**
 * A synthesized CloudFormation template as the emulator reads it: resources by type, and a resolver for the
 * intrinsic functions CDK emits (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split), so that what runs
 * locally is configured by the same template that deploys.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface Resource {
  Type: string;
  Properties?: Record<string, any>;
}

export interface Template {
  Resources: Record<string, Resource>;
  Outputs?: Record<string, { Value: unknown }>;
}

/** The template of `stackName` in a cloud assembly folder (cdk.out). */
export function loadTemplate(cdkOut: string, stackName: string): Template {
  const file = path.join(cdkOut, `${stackName}.template.json`);
  if (!existsSync(file)) {
    throw new Error(`No synthesized template at ${file}; run \`npx cdk synth\` (npm start does it for you).`);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Template;
}

export function resourcesOfType(template: Template, type: string): Array<[string, Resource]> {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}

/** The single resource of a type; a clear error if the template has none or several. */
export function onlyResource(template: Template, type: string): [string, Resource] {
  const found = resourcesOfType(template, type);
  if (found.length !== 1) throw new Error(`Expected exactly one ${type} in the template, found ${found.length}`);
  return found[0];
}

/** Where CDK staged a Lambda's bundle (Code.S3Key is `<hash>.zip`, the folder is `asset.<hash>`). */
export function assetDir(resource: Resource, cdkOut: string): string {
  const key = resource.Properties?.Code?.S3Key as string | undefined;
  const hash = key?.replace(/\.zip$/, '');
  const dir = hash && path.join(cdkOut, `asset.${hash}`);
  if (!dir || !existsSync(dir)) throw new Error(`Bundle for function ${key ?? '(inline)'} not found in ${cdkOut}`);
  return dir;
}

/** What a logical id resolves to locally: its Ref value and its attributes. */
export interface LocalValue {
  ref: string;
  attrs?: Record<string, string>;
}

export class Resolver {
  constructor(
    private readonly values: Record<string, LocalValue>,
    private readonly pseudo: Record<string, string>,
  ) {}

  ref(logicalId: string): string {
    const pseudo = this.pseudo[logicalId];
    if (pseudo !== undefined) return pseudo;
    const value = this.values[logicalId];
    if (!value) throw new Error(`Cannot resolve Ref ${logicalId} locally`);
    return value.ref;
  }

  getAtt(logicalId: string, attribute: string): string {
    const value = this.values[logicalId]?.attrs?.[attribute];
    if (value === undefined) throw new Error(`Cannot resolve Fn::GetAtt ${logicalId}.${attribute} locally`);
    return value;
  }

  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (typeof value !== 'object' || value === null) return value;
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1) {
      const [fn, arg] = entries[0] as [string, any];
      switch (fn) {
        case 'Ref':
          return this.ref(arg);
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg) ? arg : String(arg).split('.');
          return this.getAtt(id, attr);
        }
        case 'Fn::Join':
          return (this.resolve(arg[1]) as unknown[]).join(arg[0]);
        case 'Fn::Select':
          return (this.resolve(arg[1]) as unknown[])[Number(this.resolve(arg[0]))];
        case 'Fn::Split':
          return String(this.resolve(arg[1])).split(arg[0]);
        case 'Fn::Sub': {
          const [text, vars] = typeof arg === 'string' ? [arg, {}] : [arg[0], arg[1] ?? {}];
          return (text as string).replace(/\$\{([^}]+)\}/g, (_m, name: string) => {
            if (name in vars) return String(this.resolve(vars[name]));
            const [id, attr] = name.split('.');
            return attr ? this.getAtt(id, attr) : this.ref(id);
          });
        }
      }
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(v)]));
  }
}

/** Every logical id a value refers to (Ref or Fn::GetAtt), e.g. to find the function behind an integration URI. */
export function referencedIds(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(referencedIds);
  if (typeof value !== 'object' || value === null) return [];
  const record = value as Record<string, unknown>;
  if (typeof record.Ref === 'string') return [record.Ref];
  if (Array.isArray(record['Fn::GetAtt'])) return [record['Fn::GetAtt'][0] as string];
  return Object.values(record).flatMap(referencedIds);
}
