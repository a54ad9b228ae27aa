import fs from 'node:fs';
import path from 'node:path';
import { createViews, type Brand } from '../../src/shared/views.ts';

const VIEWS_DIR = path.join(import.meta.dirname, '../../views');
const brand: Brand = {
  name: 'Acme <Pay> & "Co"',
  accent: '#2457a6',
  logo: { type: 'image/svg+xml', bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') },
};
const views = createViews(brand);
const SCRIPT = '<script>alert(1)</script>';

describe('templates escape every value', () => {
  test('a partner name with markup renders as text, in the title, the heading and the body', () => {
    const html = views.page(`Allow ${SCRIPT}?`, 'consent', {
      uid: 'u"1',
      csrf: 'c"><b>',
      client: SCRIPT,
      username: '<img src=x onerror=alert(1)>',
      details: [
        { kind: 'payment', headline: `Pay €1.00 to ${SCRIPT}`, parts: ['IBAN <i>'], hint: `${SCRIPT} may also check its status.` },
        { kind: 'fields', type: '<b>t</b>', fields: ['a: <u>'] },
      ],
      scopes: [{ scope: '<s>', words: '<em>words</em>' }],
    });
    expect(html).not.toMatch(/<(script|img src=x|b>|i>|u>|s>|em>)/);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain(`<title>Allow &lt;script&gt;alert(1)&lt;/script&gt;? — Acme &lt;Pay&gt; &amp; &quot;Co&quot;</title>`);
    expect(html).toContain('value="c&quot;&gt;&lt;b&gt;"');
    expect(html).toContain('action="/interaction/u&quot;1/consent"');
  });

  test('a value that looks like a template stays text', () => {
    const html = views.page('Oops', 'error', { message: '<%= it.code %> <%~ it.title %>', code: 'invalid_request' });
    expect(html).toContain('<h1>Oops</h1>');
    expect(html).toContain('<p>&lt;%= it.code %&gt; &lt;%~ it.title %&gt;</p>');
  });

  test('raw output only places templates’ own output: the layout’s body and partials', () => {
    const files = fs.readdirSync(VIEWS_DIR, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.eta'));
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      const raw = [...fs.readFileSync(path.join(VIEWS_DIR, file), 'utf8').matchAll(/<%~\s*([\s\S]*?)%>/g)].map((m) => m[1].trim());
      for (const expression of raw) expect(`${file}: ${expression}`).toMatch(/: (it\.body|include\('@partials\/[a-z-]+', \{[^}]*\}\))$/);
    }
  });
});

describe('every page carries the brand', () => {
  test('header with logo and name, the hashed stylesheet and logo, one h1', () => {
    const html = views.page('Sign in', 'error', { message: 'm', code: 'c' });
    const stylesheet = /<link rel="stylesheet" href="(\/assets\/portcullis-[\w-]{12}\.css)">/.exec(html)?.[1];
    const logo = /<img class="logo" src="(\/assets\/logo-[\w-]{12}\.svg)" alt=""/.exec(html)?.[1];
    expect(stylesheet && views.assets.get(stylesheet)?.body).toContain('--accent: #2457a6;');
    expect(logo && views.assets.get(logo)?.body).toEqual(brand.logo.bytes);
    expect(views.assets.get(stylesheet!)?.cacheControl).toMatch(/immutable/);
    expect(html).toContain('<span class="brand-name">Acme &lt;Pay&gt; &amp; &quot;Co&quot;</span>');
    expect(html.match(/<h1>/g)).toHaveLength(1);
  });

  test('another accent or logo is another URL', () => {
    const other = createViews({ ...brand, accent: '#0f5e7a', logo: { type: 'image/png', bytes: Buffer.from('png') } });
    const [ours, theirs] = [views, other].map((v) => [...v.assets.keys()].sort());
    expect(theirs.filter((key) => ours.includes(key))).toEqual(['/assets/portcullis.css']);
    expect(theirs.some((key) => key.endsWith('.png'))).toBe(true);
  });
});
