// Tests for the console session player (src/console/assets/player.js).
// Run with: node --test tests/console/player.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const SOURCE = readFileSync(
  fileURLToPath(new URL('../../src/console/assets/player.js', import.meta.url)),
  'utf8',
);

// Loads the script the way a browser would (a classic script), with optional globals.
function load(globals = {}) {
  const module = { exports: {} };
  vm.runInNewContext(SOURCE, { module, ...globals }, { filename: 'player.js' });
  return module.exports;
}

const { Screen, timeline, styleClasses, formatTime } = load();

function screen(cols, rows, ...chunks) {
  const s = new Screen(cols, rows);
  for (const c of chunks) s.write(c);
  return s;
}

const cls = (s, x, y) => styleClasses(s.cell(x, y).s);
const ESC = '\x1b';

test('loads without a document and exposes the core', () => {
  assert.equal(typeof Screen, 'function');
  assert.equal(typeof timeline, 'function');
});

test('CR and LF are independent', () => {
  assert.equal(screen(10, 3, 'abc\r\ndef').text(), 'abc\ndef\n');
  assert.equal(screen(10, 3, 'ab\ncd').text(), 'ab\n  cd\n');
  assert.equal(screen(10, 3, 'abcd\rX').text(), 'Xbcd\n\n');
});

test('backspace, tab and bell', () => {
  assert.equal(screen(20, 1, 'abc\b\bX').text(), 'aXc');
  assert.equal(screen(20, 1, 'a\tb\tc').text(), 'a       b       c');
  assert.equal(screen(20, 1, 'a\x07b').text(), 'ab');
  const s = screen(10, 1, '\t\t\t');
  assert.equal(s.x, 9, 'tab stops at the right margin');
});

test('auto-wrap is deferred at the right margin', () => {
  assert.equal(screen(5, 3, 'abcdefg').text(), 'abcde\nfg\n');
  const s = screen(5, 3, 'abcde');
  assert.equal(s.x, 4);
  assert.equal(s.y, 0);
  s.write('\r\nX');
  assert.equal(s.text(), 'abcde\nX\n', 'CRLF after a full line must not add a blank line');
  const nowrap = screen(5, 2, `${ESC}[?7labcdefg`);
  assert.equal(nowrap.text(), 'abcdg\n');
});

test('writing past the bottom scrolls and keeps scrollback', () => {
  const s = screen(5, 3, 'a\r\nb\r\nc\r\nd');
  assert.equal(s.text(), 'b\nc\nd');
  assert.equal(s.scrollback.length, 1);
  assert.equal(s.scrollback[0].map((c) => c.c).join('').trim(), 'a');
  const many = new Screen(4, 2);
  for (let i = 0; i < 5000; i++) many.write(`${i % 10}\r\n`);
  assert.ok(many.scrollback.length <= 2000 && many.scrollback.length >= 1000);
});

test('cursor movement and erase', () => {
  const s = screen(20, 4, 'hello world', `${ESC}[1;7H`, `${ESC}[K`);
  assert.equal(s.text(), 'hello\n\n\n');
  s.write(`${ESC}[3;3Hxy${ESC}[2Aup${ESC}[B${ESC}[5Dq`);
  assert.equal(s.text(), 'hellup\n q\n  xy\n');
  s.write(`${ESC}[2J`);
  assert.equal(s.text(), '\n\n\n');
  assert.deepEqual([s.x, s.y], [2, 1], 'ED does not move the cursor');

  const t = screen(10, 3, 'aaaaaaaaaa\r\nbbbbbbbbbb\r\ncccccccccc', `${ESC}[2;5H${ESC}[J`);
  assert.equal(t.text(), 'aaaaaaaaaa\nbbbb\n');
  t.write(`${ESC}[1;3H${ESC}[1K`);
  assert.equal(t.text(), '   aaaaaaa\nbbbb\n');
  t.write(`${ESC}[2K`);
  assert.equal(t.text(), '\nbbbb\n');

  const u = screen(10, 3, 'abcdefghij', `${ESC}[2;1H`, '0123456789', `${ESC}[2;4H${ESC}[1J`);
  assert.equal(u.text(), '\n    456789\n');
});

test('CHA, VPA, CNL, CPL and HVP', () => {
  const s = screen(10, 5, `${ESC}[3Gx${ESC}[4dy${ESC}[Fz${ESC}[2Ew${ESC}[1;1fv`);
  assert.equal(s.text(), 'v x\n\nz\n   y\nw');
});

test('character and line editing: ECH, DCH, ICH, IL, DL', () => {
  assert.equal(screen(10, 1, 'abcdefgh', `${ESC}[3G${ESC}[2X`).text(), 'ab  efgh');
  assert.equal(screen(10, 1, 'abcdefgh', `${ESC}[3G${ESC}[2P`).text(), 'abefgh');
  assert.equal(screen(10, 1, 'abcdefgh', `${ESC}[3G${ESC}[2@`).text(), 'ab  cdefgh');
  assert.equal(screen(10, 1, 'abcdefghij', `${ESC}[3G${ESC}[3@`).text(), 'ab   cdefg');
  const il = screen(5, 4, '1\r\n2\r\n3\r\n4', `${ESC}[2;3H${ESC}[L`);
  assert.equal(il.text(), '1\n\n2\n3');
  assert.equal(il.x, 0);
  const dl = screen(5, 4, '1\r\n2\r\n3\r\n4', `${ESC}[2H${ESC}[2M`);
  assert.equal(dl.text(), '1\n4\n\n');
});

test('scroll region, SU/SD and reverse index', () => {
  const s = screen(5, 5, '1\r\n2\r\n3\r\n4\r\n5', `${ESC}[2;4r`);
  assert.deepEqual([s.x, s.y], [0, 0], 'DECSTBM homes the cursor');
  s.write(`${ESC}[4;1H\nX`);
  assert.equal(s.text(), '1\n3\n4\nX\n5');
  assert.equal(s.scrollback.length, 0, 'scrolling a region does not feed scrollback');
  s.write(`${ESC}[2;1H${ESC}M`);
  assert.equal(s.text(), '1\n\n3\n4\n5');
  s.write(`${ESC}[2S`);
  assert.equal(s.text(), '1\n4\n\n\n5');
  s.write(`${ESC}[T`);
  assert.equal(s.text(), '1\n\n4\n\n5');
  s.write(`${ESC}[r${ESC}[5;1H${ESC}D${ESC}EZ`);
  assert.equal(s.text(), '4\n\n5\n\nZ');
});

test('SGR attributes and colours', () => {
  const s = screen(20, 1, `${ESC}[1;31mA${ESC}[22;4;44mB${ESC}[0;3;7mC${ESC}[23;27;24;95;101mD${ESC}[39;49mE${ESC}[mF`);
  assert.equal(cls(s, 0, 0), 'f1 b');
  assert.equal(cls(s, 1, 0), 'f1 g4 u');
  assert.equal(cls(s, 2, 0), 'fd gd i');
  assert.equal(cls(s, 3, 0), 'f13 g9');
  assert.equal(cls(s, 4, 0), '');
  assert.equal(cls(s, 5, 0), '');
  const inv = screen(5, 1, `${ESC}[32;7mX`);
  assert.equal(cls(inv, 0, 0), 'fd g2', 'inverse swaps foreground and background');
  const dim = screen(5, 1, `${ESC}[2mX${ESC}[22mY`);
  assert.equal(cls(dim, 0, 0), 'd');
  assert.equal(cls(dim, 1, 0), '');
});

test('extended colours are parsed without misreading their parameters', () => {
  // With a naive parser 38;5;4 would turn on blink (5) and underline (4).
  let s = screen(10, 1, `${ESC}[38;5;4mA`);
  assert.equal(cls(s, 0, 0), 'f4');
  s = screen(10, 1, `${ESC}[38;5;196;1mA`);
  assert.equal(cls(s, 0, 0), 'f1 b', '196 maps to the nearest red and bold still applies');
  s = screen(10, 1, `${ESC}[48;5;1;4mA`);
  assert.equal(cls(s, 0, 0), 'g1 u');
  s = screen(10, 1, `${ESC}[38;2;97;175;239;48;2;1;3;4mA`);
  assert.equal(cls(s, 0, 0), 'f4 g0', 'truecolour maps to the nearest palette entry');
  s = screen(10, 1, `${ESC}[38:5:2mA${ESC}[48:2::152:195:121;3mB`);
  assert.equal(cls(s, 0, 0), 'f2');
  assert.equal(cls(s, 1, 0), 'f2 g2 i');
  s = screen(10, 1, `${ESC}[4:3mA${ESC}[4:0mB`);
  assert.equal(cls(s, 0, 0), 'u');
  assert.equal(cls(s, 1, 0), '');
  s = screen(10, 1, `${ESC}[58;2;1;2;3;1mA`);
  assert.equal(cls(s, 0, 0), 'b', 'underline colour is consumed and ignored');
  s = screen(10, 1, `${ESC}[38;5mA${ESC}[38mB`);
  assert.equal(s.text(), 'AB', 'truncated extended colours are harmless');
});

test('alternate screen restores the main screen and cursor', () => {
  const s = screen(20, 3, 'main text\r\nline 2', `${ESC}[?1049h`);
  assert.equal(s.text(), '\n\n', 'alternate screen starts blank');
  s.write(`${ESC}[H${ESC}[2Jvim here\r\nmore`);
  assert.equal(s.text(), 'vim here\nmore\n');
  s.write(`${ESC}[?1049l`);
  assert.equal(s.text(), 'main text\nline 2\n');
  assert.deepEqual([s.x, s.y], [6, 1]);
  for (const mode of [47, 1047]) {
    const t = screen(10, 2, 'keep', `${ESC}[?${mode}hgone${ESC}[?${mode}l`);
    assert.equal(t.text(), 'keep\n');
  }
  const u = screen(10, 2, `${ESC}[?1049l${ESC}[?1049h${ESC}[?1049hx${ESC}[?1049l`);
  assert.equal(u.text(), '\n', 'repeated or unmatched switches are harmless');
});

test('cursor visibility and save/restore', () => {
  const s = screen(10, 3, `${ESC}[?25l`);
  assert.equal(s.cursorVisible, false);
  s.write(`${ESC}[?25h`);
  assert.equal(s.cursorVisible, true);
  s.write(`ab${ESC}7${ESC}[31m${ESC}[3;5Hzz${ESC}8c`);
  assert.equal(s.text(), 'abc\n\n    zz');
  assert.equal(cls(s, 2, 0), '', 'restore also restores attributes');
  s.write(`${ESC}[2;2H${ESC}[sQ${ESC}[uR`);
  assert.equal(s.text(), 'abc\n R\n    zz');
});

test('OSC titles and other strings are never shown', () => {
  assert.equal(screen(30, 1, `${ESC}]0;secret title\x07visible`).text(), 'visible');
  assert.equal(screen(30, 1, `${ESC}]2;t2${ESC}\\ok`).text(), 'ok');
  assert.equal(screen(30, 1, `${ESC}]8;;http://evil/${ESC}\\link${ESC}]8;;${ESC}\\`).text(), 'link');
  assert.equal(screen(30, 1, `${ESC}Pq#0;2;0;0;0~~-${ESC}\\after`).text(), 'after');
  assert.equal(screen(30, 1, `${ESC}_apc${ESC}\\${ESC}^pm${ESC}\\${ESC}Xsos${ESC}\\x`).text(), 'x');
  assert.equal(screen(30, 1, '\x9d0;c1 title\x07\x9b31mred').text(), 'red');
  const s = screen(30, 1, `${ESC}]0;abc${ESC}[32mgreen`);
  assert.equal(s.text(), 'green', 'ESC inside OSC aborts it and starts a new sequence');
  assert.equal(cls(s, 0, 0), 'f2');
});

test('unknown and private sequences are swallowed, never echoed', () => {
  const s = screen(40, 1,
    `${ESC}[>0c${ESC}[?2004h${ESC}[5 q${ESC}[=1;2u${ESC}[<0;1;2M${ESC}[?1;2$p`,
    `${ESC}(B${ESC})0${ESC}#8${ESC}%G${ESC}=${ESC}>${ESC}Z${ESC}[6n${ESC}[18t${ESC}[12;1'z`,
    'ok\x00\x01\x7f\x85');
  assert.equal(s.text(), 'ok');
  for (const row of s.lines) for (const c of row) assert.ok(!/[\x00-\x1f\x7f-\x9f]/.test(c.c));
});

test('DEC line drawing charset', () => {
  assert.equal(screen(10, 1, `${ESC}(0lqqk${ESC}(B lqk`).text(), '┌──┐ lqk');
  assert.equal(screen(10, 1, `${ESC})0a\x0ex\x0fx`).text(), 'a│x');
});

test('sequences split across writes', () => {
  const s = screen(20, 2);
  for (const part of [`${ESC}`, '[', '3', '1', 'mR', `${ESC}[0`, 'm', 'G', `${ESC}]0;ti`, 'tle\x07', 'T']) s.write(part);
  assert.equal(s.text(), 'RGT\n');
  assert.equal(cls(s, 0, 0), 'f1');
  assert.equal(cls(s, 1, 0), '');
  const t = screen(20, 2, `${ESC}]0;x${ESC}`, '\\done', `${ESC}[2`, ';3H!');
  assert.equal(t.text(), 'done\n  !');
});

test('hostile markup is plain text', () => {
  const payload = '<img src=x onerror=alert(1)>';
  const s = screen(80, 2, payload, '\r\n<script>alert("x")</script>&amp;');
  assert.equal(s.text(), `${payload}\n<script>alert("x")</script>&amp;`);
});

test('bidi controls are dropped and combining marks attach to their base', () => {
  assert.equal(screen(10, 1, 'ab\u202ecd\u2066e').text(), 'abcde');
  const s = screen(10, 1, 'e\u0301x');
  assert.equal(s.cell(0, 0).c, 'e\u0301');
  assert.equal(s.x, 2);
  const capped = screen(4, 1, 'a' + '\u0301'.repeat(10000));
  assert.ok(capped.cell(0, 0).c.length <= 16);
});

test('REP repeats the previous character', () => {
  assert.equal(screen(10, 1, `-${ESC}[4b`).text(), '-----');
  assert.equal(screen(10, 2, `x${ESC}[65535b`).text(), 'xxxxxxxxxx\nx', 'bounded by the screen size');
});

test('sizes, parameters and counts are bounded', () => {
  const big = new Screen(100000, 100000);
  assert.equal(big.cols, 500);
  assert.equal(big.rows, 200);
  const bad = new Screen('x', -4);
  assert.deepEqual([bad.cols, bad.rows], [80, 1]);
  const s = screen(80, 24, `${ESC}[99999999;99999999H`);
  assert.deepEqual([s.x, s.y], [79, 23]);
  s.write('Z');
  assert.equal(s.text().split('\n')[23], ' '.repeat(79) + 'Z');
  s.write(`${ESC}[99999999A${ESC}[99999999D`);
  assert.deepEqual([s.x, s.y], [0, 0]);
  for (const f of '@PXLMSTbIZJK') s.write(`${ESC}[99999999${f}`);
  s.write(`${ESC}[99999999;0r${ESC}[0;99999999r`);
  assert.equal(s.lines.length, 24);
  for (const row of s.lines) assert.equal(row.length, 80);
  s.write(`${ESC}[2J${ESC}[H${ESC}[${'1;'.repeat(100000)}31mA`);
  assert.ok(s.params.length <= 32);
  assert.equal(s.text().replace(/\s/g, ''), 'A');
});

test('1 MB of random bytes does not throw and leaves a sane screen', () => {
  let seed = 0x2545f491;
  const rand = () => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const pieces = [];
  for (let i = 0; i < 1 << 20; i++) {
    const r = rand();
    // Bias toward escape-sequence material so the parser states get exercised.
    if (r < 0.05) pieces.push('\x1b');
    else if (r < 0.1) pieces.push('[;?0123456789'[Math.floor(rand() * 13)]);
    else if (r < 0.2) pieces.push(String.fromCharCode(Math.floor(rand() * 0x10000)));
    else pieces.push(String.fromCharCode(Math.floor(rand() * 256)));
  }
  const data = pieces.join('');
  const s = new Screen(80, 24);
  const started = Date.now();
  for (let i = 0; i < data.length; i += 4093) s.write(data.slice(i, i + 4093));
  assert.ok(Date.now() - started < 20000, 'parsing stays fast');
  assert.equal(s.lines.length, 24);
  for (const row of s.lines) assert.equal(row.length, 80);
  assert.ok(s.x >= 0 && s.x < 80 && s.y >= 0 && s.y < 24);
  assert.ok(!s.text().includes('\x1b'));
  assert.ok(s.scrollback.length <= 2000);
});

test('timeline validates events and compresses idle gaps', () => {
  const t = timeline([[0.5, 'o', 'a'], [1, 'i', 'b'], [31, 'o', 'c'], ['x', 'o', 'd'], [32, 'o', 5], null, [31.5, 'o', 'e'], [40, 'o', 'f']]);
  assert.equal(JSON.stringify(t.map((e) => [e.t, e.data])), JSON.stringify([[0.5, 'a'], [1, 'b'], [3, 'c'], [3.5, 'e'], [5.5, 'f']]));
  assert.equal(timeline('nope').length, 0);
  assert.equal(formatTime(0), '0:00');
  assert.equal(formatTime(61.9), '1:01');
  assert.equal(formatTime(3725), '62:05');
});

/* ---------- minimal DOM for the player UI ---------- */

class FakeNode {
  constructor(tag, text = '') {
    this.tagName = tag.toUpperCase();
    this.childNodes = [];
    this.attributes = {};
    this.dataset = {};
    this.style = {};
    this.listeners = {};
    this.className = '';
    this._text = text;
    const self = this;
    this.classList = {
      add(...names) { self.className = [...self.className.split(' ').filter(Boolean), ...names].join(' '); },
      contains(name) { return self.className.split(' ').includes(name); },
    };
  }
  appendChild(node) {
    if (node.tagName === '#FRAGMENT') {
      this.childNodes.push(...node.childNodes);
      node.childNodes = [];
    } else {
      this.childNodes.push(node);
    }
    return node;
  }
  append(...nodes) { nodes.forEach((n) => this.appendChild(n)); }
  get textContent() {
    return this.tagName === '#TEXT' ? this._text : this.childNodes.map((c) => c.textContent).join('');
  }
  set textContent(value) {
    if (this.tagName === '#TEXT') { this._text = String(value); return; }
    this.childNodes = String(value) ? [new FakeNode('#text', String(value))] : [];
  }
  setAttribute(k, v) { this.attributes[k] = String(v); }
  getAttribute(k) { return k in this.attributes ? this.attributes[k] : null; }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  fire(type) { (this.listeners[type] || []).forEach((fn) => fn({ type, target: this })); }
  set innerHTML(_) { throw new Error('innerHTML must not be used'); }
  set outerHTML(_) { throw new Error('outerHTML must not be used'); }
  insertAdjacentHTML() { throw new Error('insertAdjacentHTML must not be used'); }
  *walk() { yield this; for (const c of this.childNodes) yield* c.walk(); }
  find(pred) { for (const n of this.walk()) if (pred(n)) return n; return null; }
  byClass(name) { return this.find((n) => n.className.split(' ').includes(name)); }
}

function fakePage(casts, readyState = 'complete') {
  const players = [];
  const scripts = {};
  for (const [id, json] of Object.entries(casts)) {
    const div = new FakeNode('div');
    div.className = 'player';
    div.dataset.cast = id;
    players.push(div);
    scripts[id] = new FakeNode('script', json);
    scripts[id].childNodes = [new FakeNode('#text', json)];
  }
  const docListeners = {};
  const document = {
    readyState,
    createElement: (tag) => new FakeNode(tag),
    createTextNode: (text) => new FakeNode('#text', String(text)),
    createDocumentFragment: () => new FakeNode('#fragment'),
    getElementById: (id) => scripts[id] || null,
    querySelectorAll: (sel) => (sel === '.player[data-cast]' ? players : []),
    addEventListener: (type, fn) => { (docListeners[type] ||= []).push(fn); },
  };
  // Deterministic clock and timers.
  const clock = { now: 0, timers: [], nextId: 1 };
  const globals = {
    document,
    performance: { now: () => clock.now },
    setTimeout: (fn, ms) => { const id = clock.nextId++; clock.timers.push({ id, fn, at: clock.now + ms }); return id; },
    clearTimeout: (id) => { clock.timers = clock.timers.filter((t) => t.id !== id); },
  };
  const advance = (ms) => {
    const end = clock.now + ms;
    for (;;) {
      clock.timers.sort((a, b) => a.at - b.at);
      const t = clock.timers[0];
      if (!t || t.at > end) break;
      clock.timers.shift();
      clock.now = Math.max(clock.now, t.at);
      t.fn();
    }
    clock.now = end;
  };
  return { players, globals, advance, clock, docListeners };
}

const CAST = JSON.stringify({
  width: 20,
  height: 3,
  events: [
    [0.5, 'o', '$ '],
    [1.0, 'i', 'ls\r'],
    [1.5, 'o', 'ls\r\n'],
    [30, 'o', `${ESC}]0;title\x07${ESC}[31m<b>x</b>${ESC}[0m   \r\n`],
    [30.5, 'o', '$ '],
  ],
});

test('player builds its UI and shows the screen at time zero', () => {
  const page = fakePage({ c1: CAST });
  load(page.globals);
  const root = page.players[0];
  assert.equal(root.getAttribute('data-state') ?? root.dataset.state, 'paused');
  const buttons = [...root.walk()].filter((n) => n.tagName === 'BUTTON');
  assert.equal(buttons.length, 2);
  for (const b of buttons) {
    assert.equal(b.getAttribute('type'), 'button');
    assert.ok(b.getAttribute('aria-label'));
  }
  const select = root.find((n) => n.tagName === 'SELECT');
  assert.deepEqual(select.childNodes.map((o) => o.getAttribute('value')), ['0.5', '1', '2', '4', '8']);
  const range = root.find((n) => n.tagName === 'INPUT');
  assert.equal(range.getAttribute('type'), 'range');
  assert.equal(Number(range.getAttribute('max')), 4, 'the 28.5 s idle gap counts as 2 s');
  const pre = root.find((n) => n.tagName === 'PRE');
  assert.equal(pre.className, 'term');
  assert.equal(pre.textContent, '\n\n');
  assert.equal(root.byClass('time').textContent, '0:00 / 0:04');
});

test('player plays to the end, seeks, and restarts from the end', () => {
  const page = fakePage({ c1: CAST });
  load(page.globals);
  const root = page.players[0];
  const pre = root.find((n) => n.tagName === 'PRE');
  const play = root.byClass('play');
  const range = root.find((n) => n.tagName === 'INPUT');

  play.fire('click');
  assert.equal(root.dataset.state, 'playing');
  assert.equal(play.getAttribute('aria-label'), 'Pause');
  page.advance(600);
  assert.equal(pre.textContent, '$\n\n');
  page.advance(1000);
  assert.equal(pre.textContent, '$ ls\n\n');
  play.fire('click');
  assert.equal(root.dataset.state, 'paused');
  page.advance(10000);
  assert.equal(pre.textContent, '$ ls\n\n', 'nothing advances while paused');
  play.fire('click');
  page.advance(5000);
  assert.equal(root.dataset.state, 'ended');
  assert.equal(pre.textContent, '$ ls\n<b>x</b>\n$', 'title hidden, markup literal, trailing blanks trimmed');
  const red = pre.find((n) => n.className === 'f1');
  assert.equal(red.textContent, '<b>x</b>');
  const cursor = pre.byClass('cur');
  assert.ok(cursor.classList.contains('pad'), 'cursor past the text is drawn as padding');
  assert.equal(cursor.dataset.pad, ' ');

  range.value = '1';
  range.fire('input');
  assert.equal(pre.textContent, '$\n\n', 'seeking back re-renders from the start');
  assert.equal(root.dataset.state, 'paused');
  assert.equal(root.byClass('time').textContent, '0:01 / 0:04');

  range.value = '4';
  range.fire('input');
  assert.equal(root.dataset.state, 'ended');
  play.fire('click');
  assert.equal(root.dataset.state, 'playing');
  assert.equal(pre.textContent, '\n\n', 'play after the end restarts');

  root.byClass('speed').value = '8';
  root.byClass('speed').fire('change');
  page.advance(600);
  assert.equal(root.dataset.state, 'ended', 'speed applies to playback');

  root.byClass('restart').fire('click');
  assert.equal(root.dataset.state, 'playing');
  assert.equal(pre.textContent, '\n\n');
});

test('player waits for DOMContentLoaded and reports unreadable casts', () => {
  const page = fakePage({ ok: CAST, broken: '{not json' }, 'loading');
  load(page.globals);
  assert.equal(page.players[0].childNodes.length, 0);
  page.docListeners.DOMContentLoaded.forEach((fn) => fn());
  assert.equal(page.players[0].dataset.state, 'paused');
  assert.ok(page.players[1].classList.contains('player-error'));
  assert.equal(page.players[1].dataset.state, undefined);
});

test('coloured trailing blanks are drawn without adding text', () => {
  const cast = JSON.stringify({ width: 10, height: 2, events: [[0, 'o', `${ESC}[?25l${ESC}[7m bar      ${ESC}[0m\r\n${ESC}[44m${ESC}[Kplain${ESC}[49m   `]] });
  const page = fakePage({ c: cast });
  load(page.globals);
  const pre = page.players[0].find((n) => n.tagName === 'PRE');
  assert.equal(pre.textContent, ' bar\nplain');
  const pads = [...pre.walk()].filter((n) => n.classList && n.classList.contains('pad'));
  // Row 1: inverse blanks. Row 2: three default blanks (kept only to position what follows),
  // then two blanks erased with the blue background.
  const shape = pads.map((n) => [n.className, n.dataset.pad.length]);
  assert.equal(JSON.stringify(shape), JSON.stringify([['fd gd pad', 6], ['pad', 3], ['g4 pad', 2]]));
  assert.equal(pre.byClass('g4').textContent, 'plain');
  assert.equal(pre.byClass('cur'), null, 'hidden cursor is not drawn');
});
