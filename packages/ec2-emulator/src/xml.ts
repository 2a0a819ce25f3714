/** The namespace every EC2 response carries; the SDK ignores it, but real clients and tools check it. */
export const EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Escapes text for element content and attribute values (the five XML entities; nothing else needs it in UTF-8). */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

/** A value a response field may hold; undefined fields are left out, as EC2 leaves out unset fields. */
export type XmlValue = string | number | boolean | undefined | XmlFragment | XmlRecord;

/** Nested elements: each field becomes a child element. */
export interface XmlRecord {
  [name: string]: XmlValue;
}

/** Already-rendered XML, kept apart from plain strings so it is never escaped twice. */
export class XmlFragment {
  constructor(readonly xml: string) {}
}

/** `<name>value</name>`, escaping text; an object renders its fields as child elements. */
export function el(name: string, value: XmlValue): string {
  if (value === undefined) return "";
  if (value instanceof XmlFragment) return `<${name}>${value.xml}</${name}>`;
  if (typeof value === "object") return `<${name}>${fields(value)}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** Child elements from an object's fields, in order. */
export function fields(record: XmlRecord): string {
  return Object.entries(record)
    .map(([name, value]) => el(name, value))
    .join("");
}

/** EC2's list shape: `<name><item>…</item>…</name>`. */
export function set(items: XmlRecord[]): XmlFragment {
  return new XmlFragment(items.map((item) => el("item", item)).join(""));
}

export function raw(xml: string): XmlFragment {
  return new XmlFragment(xml);
}

/** A successful response document for an action. */
export function responseXml(action: string, requestId: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NAMESPACE}"><requestId>${requestId}</requestId>${body}</${action}Response>`;
}

/** EC2's error envelope (note `RequestID`, capitalised unlike the success case — the SDK reads both). */
export function errorXml(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>${el("Code", code)}${el("Message", message)}</Error></Errors>${el("RequestID", requestId)}</Response>`;
}
