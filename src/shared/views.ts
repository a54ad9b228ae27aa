import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { escapeHtml } from './html.ts';

const VIEWS_DIR = fileURLToPath(new URL('../../views/', import.meta.url));
const templates = new Map<string, string>();

/** Fills `{{name}}` slots, HTML-escaped; `{{{name}}}` takes trusted markup made by our code. */
export function render(view: string, values: Record<string, string>): string {
  let template = templates.get(view);
  if (template === undefined) {
    template = fs.readFileSync(`${VIEWS_DIR}${view}.html`, 'utf8');
    templates.set(view, template);
  }
  // one pass over the template: what a slot inserts is never scanned for slots again, so a
  // value such as a username `{{csrf}}` stays text
  // (one of the two groups matched: the other is undefined)
  return template.replace(/\{\{\{(\w+)\}\}\}|\{\{(\w+)\}\}/g, (_, trusted: string | undefined, name: string | undefined) =>
    trusted !== undefined ? (values[trusted] ?? '') : escapeHtml(values[name ?? ''] ?? ''),
  );
}

/** A whole page: `view` rendered into the layout (views/page.html) under one h1, `title`. */
export function renderPage(title: string, view: string, values: Record<string, string>): string {
  return render('page', { title, content: render(view, values) });
}
