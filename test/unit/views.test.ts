import { render, renderPage } from '../../src/shared/views.ts';

describe('templates expand once', () => {
  test('a value that looks like a slot stays text', () => {
    const html = render('error', { message: '{{code}} {{{code}}}', code: 'invalid_request' });
    expect(html).toContain('<p>{{code}} {{{code}}}</p>');
    expect(html).toContain('<code>invalid_request</code>');
  });

  test('a view rendered into the page is not scanned again', () => {
    const html = renderPage('Oops', 'error', { message: '{{content}} {{title}} <b>', code: 'x' });
    expect(html).toContain('<h1>Oops</h1>');
    expect(html).toContain('<p>{{content}} {{title}} &#60;b&#62;</p>');
    expect(html).not.toContain('<b>');
  });
});
