import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta/core';

/**
 * The server's pages: eta templates in views/ (`*.eta`; partials in views/partials/), every one
 * rendered into views/layout.eta (the header with the brand's logo and name, one h1). Templates
 * are read and compiled once, when this module loads; a request never reads a file. Every
 * `<%= %>` is HTML-escaped; raw output (`<%~ %>`) is kept for the layout's body and partials,
 * which are templates' own output (test/unit/views.test.ts holds every template to that).
 */

const VIEWS_DIR = fileURLToPath(new URL('../../views/', import.meta.url));

/** `eta/core` has no file system: only the templates loaded below exist, by name (`@login`, `@partials/alert`). */
const eta = new Eta({ autoEscape: true, cache: true, useWith: false });
for (const file of fs
  .readdirSync(VIEWS_DIR, { recursive: true, encoding: 'utf8' })
  .filter((name) => name.endsWith('.eta'))
  .sort())
  eta.loadTemplate(`@${file.slice(0, -'.eta'.length).split(path.sep).join('/')}`, fs.readFileSync(path.join(VIEWS_DIR, file), 'utf8'));

const BASE_STYLESHEET = fs.readFileSync(path.join(VIEWS_DIR, 'portcullis.css'), 'utf8');

/** The BRAND_* settings (src/config/config.ts), as the pages use them. */
export type Brand = Readonly<{ name: string; accent: string; logo: Readonly<{ type: 'image/svg+xml' | 'image/png'; bytes: Buffer }> }>;

/** A file the pages link to, answered by src/http/page-assets.routes.ts. */
type Asset = Readonly<{ type: string; body: string | Buffer; cacheControl: string }>;

export type Views = Readonly<{
  brand: Brand;
  /** `view` (a template name: `login`, `error`…) as a whole page, titled `title` (its one h1; "title — BRAND_NAME" in the tab). */
  page(title: string, view: string, data?: Readonly<Record<string, unknown>>): string;
  /** The stylesheet and the logo, by request path. */
  assets: ReadonlyMap<string, Asset>;
}>;

const YEAR = 'public, max-age=31536000, immutable';
const contentHash = (body: string | Buffer) => createHash('sha256').update(body).digest('base64url').slice(0, 12);

/** The stylesheet: the accent as CSS custom properties (a CSP without inline styles allows no other way), then views/portcullis.css. */
function stylesheetOf(brand: Brand): string {
  return `:root {\n  --accent: ${brand.accent};\n}\n${BASE_STYLESHEET}`;
}

export function createViews(brand: Brand): Views {
  const stylesheet = stylesheetOf(brand);
  const stylesheetPath = `/assets/portcullis-${contentHash(stylesheet)}.css`;
  const logoPath = `/assets/logo-${contentHash(brand.logo.bytes)}.${brand.logo.type === 'image/png' ? 'png' : 'svg'}`;
  const assets = new Map<string, Asset>([
    [stylesheetPath, { type: 'text/css; charset=utf-8', body: stylesheet, cacheControl: YEAR }],
    // the name of old: pages link the hashed one
    ['/assets/portcullis.css', { type: 'text/css; charset=utf-8', body: stylesheet, cacheControl: 'public, max-age=3600' }],
    [logoPath, { type: brand.logo.type, body: brand.logo.bytes, cacheControl: YEAR }],
  ]);
  const site = Object.freeze({ name: brand.name, stylesheet: stylesheetPath, logo: logoPath });
  return Object.freeze({
    brand,
    assets,
    page: (title: string, view: string, data: Readonly<Record<string, unknown>> = {}) => eta.render(`@${view}`, { ...data, title, site }),
  });
}

// ---------------------------------------------------------------------------------------------
// The views of this app travel with the request (the way koa-views' `ctx.render` does), so that
// each surface that answers with a page (the login steps, the provider's error and logout pages,
// the refusals of limits/, outage and https checks in http/) renders in the configured brand.

const VIEWS = Symbol('views');
type WithState = { state: unknown };

/** Done first, for every request, by src/http/page-assets.routes.ts. */
export function attachViews(ctx: WithState, views: Views): void {
  (ctx.state as Record<symbol, unknown>)[VIEWS] = views;
}

function viewsOf(ctx: WithState): Views {
  const views = (ctx.state as Record<symbol, Views | undefined>)[VIEWS];
  if (!views) throw new Error('no views on this request: the page-assets middleware must come first');
  return views;
}

/** `view` rendered as a page in the views of this request. */
export function renderPage(ctx: WithState, title: string, view: string, data?: Readonly<Record<string, unknown>>): string {
  return viewsOf(ctx).page(title, view, data);
}
