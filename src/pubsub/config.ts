// Node configuration (XEP-0060 §8.2): the options a node has, their data
// form (pubsub#node_config), and publish-options preconditions (§7.1.5).
// Every option is one row of FIELDS, so the form, its parsing and the
// precondition check cannot drift apart.
import { type DataForm, type FormField, buildForm, parseBoolean } from '../xml/data-form.ts';
import type { Element } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import { pubsubError, unsupported } from './errors.ts';

export type AccessModel = 'open' | 'presence' | 'roster' | 'whitelist';
export type PublishModel = 'publishers' | 'subscribers' | 'open';
export type SendLastPublishedItem = 'never' | 'on_sub' | 'on_sub_and_presence';
/** A number of items, or 'max': as many as the service allows. */
export type MaxItems = number | 'max';

export interface NodeConfig {
  title: string;
  description: string;
  /** The payload namespace the node carries (informational). */
  type: string;
  accessModel: AccessModel;
  /** Roster groups allowed under the 'roster' access model. */
  rosterGroupsAllowed: string[];
  publishModel: PublishModel;
  persistItems: boolean;
  maxItems: MaxItems;
  sendLastPublishedItem: SendLastPublishedItem;
  deliverNotifications: boolean;
  deliverPayloads: boolean;
  notifyRetract: boolean;
  notifyDelete: boolean;
  notifyConfig: boolean;
  notificationType: 'headline' | 'normal';
}

/** What parsing needs to know about the service. */
export interface ConfigLimits {
  /** The most items a node may keep; 'max' means this many. */
  maxItems: number;
}

interface FieldSpec<K extends keyof NodeConfig> {
  key: K;
  type: FormField['type'];
  label: string;
  options?: readonly string[];
  parse(values: string[], limits: ConfigLimits): NodeConfig[K];
  format(value: NodeConfig[K]): string[];
}

const ACCESS_MODELS = ['open', 'presence', 'roster', 'whitelist'] as const;

function bool<K extends keyof NodeConfig>(key: K, label: string): FieldSpec<K> {
  return {
    key,
    type: 'boolean',
    label,
    parse: (values) => {
      const b = parseBoolean(values[0]);
      if (b === undefined) throw invalid(key, values[0]);
      return b as NodeConfig[K];
    },
    format: (v) => [v ? '1' : '0'],
  };
}

function text<K extends keyof NodeConfig>(key: K, label: string): FieldSpec<K> {
  return { key, type: 'text-single', label, parse: (values) => (values[0] ?? '') as NodeConfig[K], format: (v) => [String(v)] };
}

function choice<K extends keyof NodeConfig>(key: K, label: string, options: readonly string[]): FieldSpec<K> {
  return {
    key,
    type: 'list-single',
    label,
    options,
    parse: (values) => {
      const v = values[0] ?? '';
      if (!options.includes(v)) throw invalid(key, v);
      return v as NodeConfig[K];
    },
    format: (v) => [String(v)],
  };
}

/** Form var → how to read and write it. */
const FIELDS: Record<string, FieldSpec<keyof NodeConfig>> = {
  'pubsub#title': text('title', 'A friendly name for the node'),
  'pubsub#description': text('description', 'A description of the node'),
  'pubsub#type': text('type', 'The type of node data, usually specified by the namespace of the payload'),
  'pubsub#access_model': {
    key: 'accessModel',
    type: 'list-single',
    label: 'Who may subscribe and retrieve items',
    options: ACCESS_MODELS,
    parse: (values) => {
      const v = values[0] ?? '';
      if (v === 'authorize') throw unsupported('access-authorize', "the 'authorize' access model is not supported");
      if (!(ACCESS_MODELS as readonly string[]).includes(v)) throw invalid('accessModel', v);
      return v as AccessModel;
    },
    format: (v) => [String(v)],
  },
  'pubsub#roster_groups_allowed': {
    key: 'rosterGroupsAllowed',
    type: 'list-multi',
    label: 'Roster groups allowed to subscribe',
    parse: (values) => [...new Set(values)],
    format: (v) => v as string[],
  },
  'pubsub#publish_model': choice('publishModel', 'Who may publish', ['publishers', 'subscribers', 'open']),
  'pubsub#persist_items': bool('persistItems', 'Persist items to storage'),
  'pubsub#max_items': {
    key: 'maxItems',
    type: 'text-single',
    label: 'Maximum number of items to persist',
    parse: (values, limits) => {
      const v = (values[0] ?? '').trim();
      if (v === 'max') return 'max';
      if (!/^\d+$/.test(v) || Number(v) < 1) throw invalid('maxItems', v);
      const n = Number(v);
      if (n > limits.maxItems) {
        throw pubsubError(
          'not-acceptable',
          'invalid-options',
          `pubsub#max_items ${n} is above this server's limit of ${limits.maxItems} items per node (use 'max')`,
        );
      }
      return n;
    },
    format: (v) => [String(v)],
  },
  'pubsub#send_last_published_item': choice('sendLastPublishedItem', 'When to send the last published item', [
    'never',
    'on_sub',
    'on_sub_and_presence',
  ]),
  'pubsub#deliver_notifications': bool('deliverNotifications', 'Deliver event notifications'),
  'pubsub#deliver_payloads': bool('deliverPayloads', 'Deliver payloads with event notifications'),
  'pubsub#notify_retract': bool('notifyRetract', 'Notify subscribers when items are removed from the node'),
  'pubsub#notify_delete': bool('notifyDelete', 'Notify subscribers when the node is deleted'),
  'pubsub#notify_config': bool('notifyConfig', 'Notify subscribers when the node configuration changes'),
  'pubsub#notification_type': choice('notificationType', 'Message type of notifications', ['normal', 'headline']),
};

function invalid(key: keyof NodeConfig, value: string | undefined): Error {
  const name = Object.entries(FIELDS).find(([, s]) => s.key === key)?.[0] ?? key;
  return pubsubError('not-acceptable', 'invalid-options', `invalid value '${value ?? ''}' for ${name}`);
}

/** The number of items a node keeps. */
export function itemLimit(config: NodeConfig, limits: ConfigLimits): number {
  // Items that are not persisted: the node still remembers its last one.
  if (!config.persistItems) return 1;
  return config.maxItems === 'max' ? limits.maxItems : Math.min(config.maxItems, limits.maxItems);
}

/**
 * A copy of `base` with the form's fields applied (node configuration or
 * the options of a new node). Unknown fields are ignored, as XEP-0004 lets a
 * form processor do; bad values are refused with not-acceptable.
 */
export function applyForm(base: NodeConfig, form: DataForm, limits: ConfigLimits): NodeConfig {
  const config: NodeConfig = { ...base, rosterGroupsAllowed: [...base.rosterGroupsAllowed] };
  for (const [name, field] of form.fields) {
    const spec = FIELDS[name];
    if (!spec) continue;
    (config as unknown as Record<string, unknown>)[spec.key] = spec.parse(field.values, limits);
  }
  return config;
}

/**
 * Publish-options (XEP-0060 §7.1.5): every field is a precondition on the
 * node's configuration; the first that differs fails the publish with
 * conflict + precondition-not-met. An option this service does not know
 * cannot hold, so it fails the same way.
 */
export function checkPreconditions(config: NodeConfig, form: DataForm, limits: ConfigLimits): void {
  for (const [name, field] of form.fields) {
    if (name === 'FORM_TYPE') continue;
    const spec = FIELDS[name];
    if (!spec) throw pubsubError('conflict', 'precondition-not-met', `unknown publish option ${name}`);
    const wanted = normalise(spec.key, spec.parse(field.values, limits), limits);
    const actual = normalise(spec.key, config[spec.key], limits);
    if (wanted !== actual) {
      throw pubsubError(
        'conflict',
        'precondition-not-met',
        `${name} is '${spec.format(config[spec.key]).join(',')}', not '${field.values.join(',')}'`,
      );
    }
  }
}

/** A comparable form of a value: 'max' equals the limit, lists compare as sets. */
function normalise(key: keyof NodeConfig, value: unknown, limits: ConfigLimits): string {
  if (key === 'maxItems') return String(value === 'max' ? limits.maxItems : value);
  if (Array.isArray(value)) return JSON.stringify([...value].sort());
  return String(value);
}

/** The configuration as a form to fill in (`form`) or report (`result`). */
export function configForm(config: NodeConfig, type: 'form' | 'result' = 'form', groups: string[] = []): Element {
  const fields: FormField[] = Object.entries(FIELDS).map(([name, spec]) => {
    let options = spec.options?.map((value) => ({ value }));
    if (spec.key === 'rosterGroupsAllowed') {
      options = [...new Set([...groups, ...config.rosterGroupsAllowed])].map((value) => ({ value }));
    }
    return {
      var: name,
      type: spec.type,
      label: spec.label,
      options: type === 'form' ? options : undefined,
      values: spec.format(config[spec.key]),
    };
  });
  return buildForm(type, NS.pubsubNodeConfig, fields);
}

/** Stored config → NodeConfig, defaults filling anything a newer version added. */
export function readStoredConfig(stored: Record<string, unknown>, defaults: NodeConfig): NodeConfig {
  return { ...defaults, ...(stored as Partial<NodeConfig>) };
}
