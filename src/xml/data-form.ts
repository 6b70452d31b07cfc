// XEP-0004 data forms: reading a submitted form into field values, and
// building forms to send. Pubsub node configuration, publish-options and
// XEP-0115 extended info (XEP-0128) all travel as data forms.
import { type Element, el } from './element.ts';
import { NS } from './namespaces.ts';

export type FieldType =
  | 'boolean'
  | 'fixed'
  | 'hidden'
  | 'jid-multi'
  | 'jid-single'
  | 'list-multi'
  | 'list-single'
  | 'text-multi'
  | 'text-private'
  | 'text-single';

export interface FormField {
  var: string;
  type?: FieldType;
  label?: string;
  values: string[];
  /** Choices of a list field: value → label. */
  options?: Array<{ value: string; label?: string }>;
}

export interface DataForm {
  type: string;
  /** The hidden FORM_TYPE field's value (XEP-0068), if any. */
  formType?: string;
  /** Fields by var (FORM_TYPE included), in document order. */
  fields: Map<string, FormField>;
}

/** Reads an `<x xmlns='jabber:x:data'/>` element; later duplicates of a var are ignored. */
export function readForm(x: Element): DataForm {
  const fields = new Map<string, FormField>();
  for (const f of x.getChildren('field')) {
    const name = f.attrs.var;
    if (!name || fields.has(name)) continue;
    fields.set(name, {
      var: name,
      type: f.attrs.type as FieldType | undefined,
      label: f.attrs.label,
      values: f.getChildren('value').map((v) => v.getText()),
    });
  }
  return { type: x.attrs.type ?? 'form', formType: fields.get('FORM_TYPE')?.values[0], fields };
}

/** The first data form child of `parent`, read, or undefined. */
export function findForm(parent: Element | undefined): DataForm | undefined {
  const x = parent?.getChild('x', NS.dataForms);
  return x ? readForm(x) : undefined;
}

/** Builds a form; `formType` becomes the hidden FORM_TYPE field. */
export function buildForm(type: 'form' | 'submit' | 'result', formType: string | undefined, fields: FormField[]): Element {
  const x = el('x', { xmlns: NS.dataForms, type });
  if (formType !== undefined) x.cnode(el('field', { var: 'FORM_TYPE', type: 'hidden' }, el('value', null, formType)));
  for (const f of fields) {
    const field = el('field', { var: f.var, type: f.type, label: f.label });
    for (const o of f.options ?? []) field.cnode(el('option', { label: o.label }, el('value', null, o.value)));
    for (const v of f.values) field.cnode(el('value', null, v));
    x.cnode(field);
  }
  return x;
}

/** XEP-0004 §3.3 boolean: "1"/"true" or "0"/"false"; undefined for anything else. */
export function parseBoolean(value: string | undefined): boolean | undefined {
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  return undefined;
}
