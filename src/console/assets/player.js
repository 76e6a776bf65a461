/* Airlock console: replay of recorded terminal sessions.
 *
 * Recorded output is untrusted. It is interpreted by a small VT/xterm subset
 * emulator (Screen) and drawn with createElement/textContent only; anything
 * the emulator does not understand is swallowed, never echoed. */
(function () {
  'use strict';

  const MAX_COLS = 500, MAX_ROWS = 200, MAX_SCROLLBACK = 1000;
  const MAX_PARAMS = 32, MAX_PARAM = 65535, MAX_CELL = 16;
  const IDLE_CAP = 2; // seconds; longer idle gaps are shortened to this

  // Packed cell style: bits 0-4 fg (0 = default, n + 1 = palette n), bits 5-9 bg, then flags.
  const FG = 0x1f, BG = 0x1f << 5;
  const BOLD = 1 << 10, DIM = 1 << 11, ITALIC = 1 << 12, UNDER = 1 << 13, INVERSE = 1 << 14;
  const FLAG_CLASSES = [[BOLD, 'b'], [DIM, 'd'], [ITALIC, 'i'], [UNDER, 'u']];
  const SGR_ON = { 1: BOLD, 2: DIM, 3: ITALIC, 4: UNDER, 21: UNDER, 7: INVERSE };
  const SGR_OFF = { 22: BOLD | DIM, 23: ITALIC, 24: UNDER, 27: INVERSE };

  // Mirrors the f0..f15 colours in player.css; used to map 256-colour/truecolour requests.
  const PALETTE = [0x1c1f24, 0xe06c75, 0x98c379, 0xe5c07b, 0x61afef, 0xc678dd, 0x56b6c2, 0xabb2bf,
    0x5c6370, 0xff7b86, 0xb5e890, 0xffd68a, 0x82c4ff, 0xde9bf0, 0x7fd8e3, 0xe6e9ef];
  const CUBE = [0, 95, 135, 175, 215, 255];
  const DEC_GRAPHICS = '◆▒␉␌␍␊°±␤␋┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·'; // ESC ( 0, chars 0x60..0x7e
  const COMBINING = /[\p{M}\u200d\ufe0e\ufe0f]/u;
  // Bidi controls could visually reorder the rest of a line; they are dropped.
  const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

  const GROUND = 0, ESC = 1, ESC_INT = 2, CSI = 3, STR = 4, STR_ESC = 5;

  function clampInt(v, lo, hi, dflt) {
    const n = Math.floor(Number(v));
    return Number.isFinite(n) ? Math.min(Math.max(n, lo), hi) : dflt;
  }

  function nearest(r, g, b) {
    let best = 0, bestD = Infinity;
    PALETTE.forEach((c, i) => {
      const d = ((c >> 16) - r) ** 2 + (((c >> 8) & 255) - g) ** 2 + ((c & 255) - b) ** 2;
      if (d < bestD) { best = i; bestD = d; }
    });
    return best;
  }

  function color256(n) {
    if (n < 16) return n;
    if (n < 232) { n -= 16; return nearest(CUBE[Math.floor(n / 36)], CUBE[Math.floor(n / 6) % 6], CUBE[n % 6]); }
    return n < 256 ? nearest(8 + 10 * (n - 232), 8 + 10 * (n - 232), 8 + 10 * (n - 232)) : -1;
  }

  const rgb = (p) => nearest(...p.map((c) => Math.min(c, 255)));

  // CSS classes for a packed style; inverse is resolved here by swapping colours.
  function styleClasses(s) {
    let fg = (s & FG) - 1, bg = ((s & BG) >> 5) - 1;
    const out = [];
    if (s & INVERSE) {
      [fg, bg] = [bg, fg];
      if (fg < 0) out.push('fd'); // default background as text colour
      if (bg < 0) out.push('gd');
    }
    if (fg >= 0) out.push('f' + fg);
    if (bg >= 0) out.push('g' + bg);
    for (const [flag, cls] of FLAG_CLASSES) if (s & flag) out.push(cls);
    return out.join(' ');
  }

  class Screen {
    constructor(cols, rows) {
      this.cols = clampInt(cols, 1, MAX_COLS, 80);
      this.rows = clampInt(rows, 1, MAX_ROWS, 24);
      this.reset();
    }

    reset() {
      this.main = this.lines = this.blankRows();
      this.scrollback = [];
      this.x = this.y = this.style = this.top = 0;
      this.bottom = this.rows - 1;
      this.alt = this.wrapPending = false; // wrapPending: xterm-style deferred wrap at the right margin
      this.autowrap = this.cursorVisible = true;
      this.charsets = [false, false]; this.gl = 0; // true = DEC line drawing
      this.saved = this.lastChar = null;
      this.state = GROUND;
      this.resetParams();
    }

    blankRow(style) {
      const row = new Array(this.cols);
      for (let i = 0; i < this.cols; i++) row[i] = { c: ' ', s: style || 0 };
      return row;
    }

    blankRows() { return Array.from({ length: this.rows }, () => this.blankRow(0)); }

    cell(x, y) { return this.lines[y][x]; }

    text() { return this.lines.map((r) => r.map((c) => c.c).join('').replace(/ +$/, '')).join('\n'); }

    write(str) {
      for (const ch of String(str)) {
        const code = ch.codePointAt(0);
        switch (this.state) {
          case GROUND:
            if (code < 0x20) this.control(code);
            else if (code >= 0x7f && code < 0xa0) this.c1(code);
            else this.print(ch, code);
            break;
          case ESC: this.escape(ch, code); break;
          case ESC_INT: this.escInter(ch, code); break;
          case CSI: this.csiChar(ch, code); break;
          case STR: // OSC/DCS/APC/PM/SOS body: discarded up to BEL or ST
            if (code === 0x1b) this.state = STR_ESC;
            else if (code === 0x07 || code === 0x9c || code === 0x18 || code === 0x1a) this.state = GROUND;
            break;
          case STR_ESC: // ESC \ ends the string; any other ESC starts a new sequence
            this.state = GROUND;
            if (code !== 0x5c) { this.state = ESC; this.escape(ch, code); }
            break;
        }
      }
    }

    control(code) { // BEL and the remaining C0 controls are ignored
      switch (code) {
        case 0x08: if (this.x > 0) this.x--; this.wrapPending = false; break;
        case 0x09: this.tab(1); break;
        case 0x0a: case 0x0b: case 0x0c: this.index(1); break;
        case 0x0d: this.x = 0; this.wrapPending = false; break;
        case 0x0e: case 0x0f: this.gl = code === 0x0e ? 1 : 0; break;
        case 0x18: case 0x1a: this.state = GROUND; break;
        case 0x1b: this.state = ESC; break;
      }
    }

    c1(code) {
      if (code === 0x9b) { this.state = CSI; this.resetParams(); }
      else if (code === 0x90 || (code >= 0x9d && code <= 0x9f) || code === 0x98) this.state = STR;
    }

    print(ch, code) {
      if (code >= 0x300 && COMBINING.test(ch)) { // zero width: attach to the previous cell
        const px = this.wrapPending ? this.x : this.x - 1;
        const cell = px >= 0 && this.lines[this.y][px];
        if (cell && cell.c.length < MAX_CELL) cell.c += ch;
        return;
      }
      if (code >= 0x61c && BIDI.test(ch)) return;
      if (this.charsets[this.gl] && code >= 0x60 && code <= 0x7e) ch = DEC_GRAPHICS[code - 0x60];
      if (this.wrapPending) {
        if (this.autowrap) { this.x = 0; this.index(1); }
        this.wrapPending = false;
      }
      const cell = this.lines[this.y][this.x];
      cell.c = ch; cell.s = this.style;
      this.lastChar = ch;
      if (this.x < this.cols - 1) this.x++;
      else if (this.autowrap) this.wrapPending = true;
    }

    escape(ch, code) {
      this.state = GROUND;
      if (code < 0x20) { this.state = ESC; this.control(code); return; }
      switch (ch) {
        case '[': this.state = CSI; this.resetParams(); break;
        case ']': case 'P': case 'X': case '^': case '_': this.state = STR; break;
        case '7': this.saveCursor(); break;
        case '8': this.restoreCursor(); break;
        case 'D': this.index(1); break;
        case 'E': this.x = 0; this.index(1); break;
        case 'M': this.index(-1); break;
        case 'c': this.reset(); break;
        default:
          if (code >= 0x20 && code < 0x30) { // charset designation and other intermediates
            this.designate = ch === '(' ? 0 : ch === ')' ? 1 : -1;
            this.state = ESC_INT;
          }
      }
    }

    escInter(ch, code) {
      if (code < 0x20) this.control(code);
      else if (code < 0x30) this.designate = -1;
      else {
        this.state = GROUND;
        if (this.designate >= 0) this.charsets[this.designate] = ch === '0';
      }
    }

    resetParams() { this.params = []; this.colon = []; this.cur = -1; this.sep = this.bad = false; this.prefix = ''; }

    pushParam() {
      if (this.params.length < MAX_PARAMS) { this.params.push(Math.max(this.cur, 0)); this.colon.push(this.sep); }
      this.cur = -1;
    }

    csiChar(ch, code) {
      if (code >= 0x30 && code <= 0x39) {
        this.cur = Math.min(Math.max(this.cur, 0) * 10 + code - 0x30, MAX_PARAM);
      } else if (ch === ';' || ch === ':') {
        this.pushParam(); this.sep = ch === ':';
      } else if (code >= 0x3c && code <= 0x3f) { // private marker: only valid first
        if (this.prefix || this.params.length || this.cur >= 0) this.bad = true;
        else this.prefix = ch;
      } else if (code >= 0x20 && code <= 0x2f) { // intermediates: nothing we act on uses them
        this.bad = true;
      } else if (code >= 0x40 && code <= 0x7e) {
        if (this.cur >= 0 || this.params.length) this.pushParam();
        this.state = GROUND;
        if (!this.bad) this.csi(ch);
      } else if (code < 0x20) {
        this.control(code); // C0 controls execute mid-sequence; ESC/CAN/SUB abort it
      } else if (code !== 0x7f) {
        this.state = GROUND;
      }
    }

    csi(final) {
      const p = this.params, n = p[0] || 1, { x, y } = this;
      if (this.prefix === '?' && (final === 'h' || final === 'l')) p.forEach((m) => this.privateMode(m, final === 'h'));
      if (this.prefix) return;
      // Vertical moves stop at the scroll margins when the cursor is inside them.
      const up = Math.max(y - n, y >= this.top ? this.top : 0);
      const down = Math.min(y + n, y <= this.bottom ? this.bottom : this.rows - 1);
      switch (final) {
        case 'A': this.moveTo(x, up); break;
        case 'B': case 'e': this.moveTo(x, down); break;
        case 'C': case 'a': this.moveTo(x + n, y); break;
        case 'D': this.moveTo(x - n, y); break;
        case 'E': this.moveTo(0, down); break;
        case 'F': this.moveTo(0, up); break;
        case 'G': case '`': this.moveTo(n - 1, y); break;
        case 'H': case 'f': this.moveTo((p[1] || 1) - 1, n - 1); break;
        case 'd': this.moveTo(x, n - 1); break;
        case 'I': this.tab(n); break;
        case 'Z': this.moveTo(Math.max(Math.ceil(x / 8) - n, 0) * 8, y); break;
        case 'J': this.eraseDisplay(p[0] || 0); break;
        case 'K': this.eraseLine(p[0] || 0); break;
        case 'X': this.fill(y, x, x + n); break;
        case 'P': this.shiftChars(-n); break;
        case '@': this.shiftChars(n); break;
        case 'L': case 'M':
          if (y >= this.top && y <= this.bottom) { this.scroll(final === 'L' ? -n : n, y, this.bottom); this.moveTo(0, y); }
          break;
        case 'S': this.scroll(n, this.top, this.bottom); break;
        case 'T': if (p.length <= 1) this.scroll(-n, this.top, this.bottom); break;
        case 'r': {
          const t = (p[0] || 1) - 1, b = Math.min(p[1] || this.rows, this.rows) - 1;
          if (t < b) { this.top = t; this.bottom = b; this.moveTo(0, 0); }
          break;
        }
        case 'm': this.sgr(p.length ? p : [0]); break;
        case 's': this.saveCursor(); break;
        case 'u': this.restoreCursor(); break;
        case 'b': // REP: repeat the last printed character
          if (this.lastChar) for (let i = Math.min(n, this.cols * this.rows); i > 0; i--) this.print(this.lastChar, 0x20);
          break;
      } // everything else (modes, reports, mouse, window ops) is ignored
    }

    privateMode(mode, on) {
      if (mode === 25) this.cursorVisible = on;
      else if (mode === 7) { this.autowrap = on; this.wrapPending = this.wrapPending && on; }
      else if ((mode === 47 || mode === 1047 || mode === 1049) && on !== this.alt) {
        this.alt = on; // alternate screen: a fresh blank buffer; the main one is kept aside
        if (on && mode === 1049) this.saveCursor();
        this.lines = on ? this.blankRows() : this.main;
        if (!on && mode === 1049) this.restoreCursor();
      }
    }

    sgr(p) {
      let s = this.style;
      for (let i = 0; i < p.length; i++) {
        const v = p[i];
        let j = i; // colon sub-parameters (e.g. 4:3, 38:2::r:g:b) belong to p[i]
        while (j + 1 < p.length && this.colon[j + 1]) j++;
        if (v === 38 || v === 48 || v === 58) { // extended colour; 58 (underline colour) is dropped
          let color = -1;
          if (j > i) {
            const sub = p.slice(i + 1, j + 1);
            if (sub[0] === 5 && sub.length >= 2) color = color256(sub[1]);
            else if (sub[0] === 2 && sub.length >= 4) color = rgb(sub.slice(-3));
          } else if (p[i + 1] === 5) {
            j = i + 2;
            if (j < p.length) color = color256(p[j]);
          } else if (p[i + 1] === 2) {
            j = i + 4;
            if (j < p.length) color = rgb(p.slice(i + 2, j + 1));
          } else if (i + 1 < p.length) {
            j = i + 1; // unknown colour space: drop its selector rather than misread it
          }
          if (color >= 0 && v === 38) s = (s & ~FG) | (color + 1);
          if (color >= 0 && v === 48) s = (s & ~BG) | ((color + 1) << 5);
        } else if (v === 4 && j > i) s = p[i + 1] ? s | UNDER : s & ~UNDER;
        else if (v === 0) s = 0;
        else if (SGR_ON[v]) s |= SGR_ON[v];
        else if (SGR_OFF[v]) s &= ~SGR_OFF[v];
        else if (v >= 30 && v <= 37) s = (s & ~FG) | (v - 29);
        else if (v >= 90 && v <= 97) s = (s & ~FG) | (v - 81);
        else if (v >= 40 && v <= 47) s = (s & ~BG) | ((v - 39) << 5);
        else if (v >= 100 && v <= 107) s = (s & ~BG) | ((v - 91) << 5);
        else if (v === 39) s &= ~FG;
        else if (v === 49) s &= ~BG;
        i = j;
      }
      this.style = s;
    }

    moveTo(x, y) {
      this.x = Math.min(Math.max(x, 0), this.cols - 1);
      this.y = Math.min(Math.max(y, 0), this.rows - 1);
      this.wrapPending = false;
    }

    tab(n) { this.moveTo((Math.floor(this.x / 8) + Math.min(n, this.cols)) * 8, this.y); }

    // Down (dir 1, LF/IND) or up (dir -1, RI) one line, scrolling at the region margin.
    index(dir) {
      this.wrapPending = false;
      if (this.y === (dir > 0 ? this.bottom : this.top)) this.scroll(dir, this.top, this.bottom);
      else this.y = Math.min(Math.max(this.y + dir, 0), this.rows - 1);
    }

    // Scroll rows top..bottom by n: positive moves content up, negative down.
    scroll(n, top, bottom) {
      const count = Math.min(Math.abs(n), bottom - top + 1), blank = this.style & BG;
      for (let i = 0; i < count; i++) {
        if (n > 0) {
          const gone = this.lines.splice(top, 1)[0];
          if (top === 0 && !this.alt) this.scrollback.push(gone);
          this.lines.splice(bottom, 0, this.blankRow(blank));
        } else {
          this.lines.splice(bottom, 1);
          this.lines.splice(top, 0, this.blankRow(blank));
        }
      }
      // Trimmed in batches so a scroll stays cheap.
      if (this.scrollback.length > 2 * MAX_SCROLLBACK) this.scrollback.splice(0, this.scrollback.length - MAX_SCROLLBACK);
    }

    // Erase cells [from, to) of a row using the current background colour.
    fill(y, from, to) {
      const row = this.lines[y], s = this.style & BG;
      for (let i = Math.max(from, 0), end = Math.min(to, this.cols); i < end; i++) row[i] = { c: ' ', s };
    }

    eraseLine(mode) {
      if (mode <= 2) this.fill(this.y, mode === 0 ? this.x : 0, mode === 1 ? this.x + 1 : this.cols);
    }

    eraseDisplay(mode) {
      if (mode === 3) this.scrollback = [];
      if (mode > 2) return;
      this.eraseLine(mode);
      for (let y = mode === 0 ? this.y + 1 : 0; y < (mode === 1 ? this.y : this.rows); y++) this.fill(y, 0, this.cols);
    }

    // Insert (n > 0) or delete (n < 0) characters at the cursor within the row.
    shiftChars(n) {
      const row = this.lines[this.y], count = Math.min(Math.abs(n), this.cols - this.x);
      const blanks = this.blankRow(this.style & BG).slice(0, count);
      if (n > 0) { row.splice(this.x, 0, ...blanks); row.length = this.cols; }
      else { row.splice(this.x, count); row.push(...blanks); }
      this.wrapPending = false;
    }

    saveCursor() { this.saved = { x: this.x, y: this.y, style: this.style, charsets: this.charsets.slice(), gl: this.gl }; }

    restoreCursor() {
      const s = this.saved || { x: 0, y: 0, style: 0, charsets: [false, false], gl: 0 };
      this.moveTo(s.x, s.y);
      Object.assign(this, { style: s.style, charsets: s.charsets.slice(), gl: s.gl });
    }
  }

  // Validates events and shortens idle gaps; times are on the compressed clock.
  function timeline(raw) {
    const out = [];
    let prev = 0, t = 0;
    for (const ev of Array.isArray(raw) ? raw : []) {
      if (!Array.isArray(ev) || typeof ev[1] !== 'string' || typeof ev[2] !== 'string') continue;
      const real = Number(ev[0]);
      if (!Number.isFinite(real)) continue;
      t += Math.min(Math.max(real - prev, 0), IDLE_CAP);
      prev = Math.max(prev, real);
      out.push({ t, type: ev[1], data: ev[2] });
    }
    return out;
  }

  function formatTime(sec) {
    const s = Math.max(0, Math.floor(sec || 0));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  /* ---------- browser side ---------- */

  function el(tag, cls, attrs) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    return node;
  }

  function render(screen, pre) {
    const frag = document.createDocumentFragment();
    screen.lines.forEach((row, y) => {
      if (y) frag.appendChild(document.createTextNode('\n'));
      const cx = screen.cursorVisible && y === screen.y ? screen.x : -1;
      let end = row.length;
      while (end > 0 && row[end - 1].c === ' ') end--;
      let last = end - 1; // last cell that must be drawn: text, cursor or a coloured blank
      for (let i = end; i < row.length; i++) if (i === cx || (row[i].s & (BG | INVERSE))) last = i;
      for (let i = 0; i <= last;) {
        const s = row[i].s, isCur = i === cx;
        let j = i + 1, text = row[i].c;
        if (!isCur) while (j <= last && j !== cx && j !== end && row[j].s === s) text += row[j++].c;
        const cls = (styleClasses(s) + (isCur ? ' cur' : '')).trim();
        if (i >= end) { // trailing blanks are CSS generated content, so textContent stays trimmed
          const pad = el('span', (cls + ' pad').trim());
          pad.dataset.pad = ' '.repeat(j - i);
          frag.appendChild(pad);
        } else if (cls) {
          const span = el('span', cls);
          span.textContent = text;
          frag.appendChild(span);
        } else {
          frag.appendChild(document.createTextNode(text));
        }
        i = j;
      }
    });
    pre.textContent = '';
    pre.appendChild(frag);
  }

  const ICON_PLAY = '\u25B6\uFE0E', ICON_PAUSE = '\u275A\u275A', ICON_RESTART = '\u21BA';
  const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

  class Player {
    constructor(root, cast) {
      this.root = root;
      this.cols = clampInt(cast.width, 1, MAX_COLS, 80);
      this.rows = clampInt(cast.height, 1, MAX_ROWS, 24);
      this.events = timeline(cast.events);
      this.duration = this.events.length ? this.events[this.events.length - 1].t : 0;
      this.speed = 1; this.pos = 0; this.next = 0; this.timer = 0;
      this.build();
      this.screen = new Screen(this.cols, this.rows);
      this.advance(0, true);
      this.setState('paused');
    }

    build() {
      const bar = el('div', 'toolbar');
      this.playBtn = el('button', 'play', { type: 'button' });
      const restart = el('button', 'restart', { type: 'button', 'aria-label': 'Restart', title: 'Restart' });
      restart.textContent = ICON_RESTART;
      this.speedSel = el('select', 'speed', { 'aria-label': 'Playback speed' });
      for (const v of ['0.5', '1', '2', '4', '8']) {
        const opt = el('option', '', { value: v });
        opt.textContent = v + '\u00d7';
        opt.selected = v === '1';
        this.speedSel.appendChild(opt);
      }
      this.range = el('input', 'seek', { type: 'range', min: '0', max: String(this.duration), step: 'any', value: '0', 'aria-label': 'Seek' });
      this.time = el('span', 'time');
      this.term = el('pre', 'term', { 'aria-label': 'Terminal playback' });
      bar.append(this.playBtn, restart, this.speedSel, this.range, this.time);
      this.root.textContent = '';
      this.root.append(bar, this.term);

      this.playBtn.addEventListener('click', () => (this.state === 'playing' ? this.pause() : this.play()));
      restart.addEventListener('click', () => { this.seek(0); this.play(); });
      this.speedSel.addEventListener('change', () => this.setSpeed(Number(this.speedSel.value)));
      this.range.addEventListener('input', () => this.seek(Number(this.range.value)));
    }

    setState(state) {
      const playing = state === 'playing';
      this.state = this.root.dataset.state = state;
      this.playBtn.textContent = playing ? ICON_PAUSE : ICON_PLAY;
      this.playBtn.setAttribute('aria-label', playing ? 'Pause' : 'Play');
      this.playBtn.setAttribute('title', playing ? 'Pause' : 'Play');
    }

    clock() { // current position on the compressed timeline
      if (this.state !== 'playing') return this.pos;
      return Math.min(this.from + ((now() - this.wall) / 1000) * this.speed, this.duration);
    }

    play() {
      if (this.state === 'ended' || this.pos >= this.duration) this.seek(0); // finished: start over
      this.setState('playing');
      this.wall = now(); this.from = this.pos;
      this.tick();
    }

    pause() {
      clearTimeout(this.timer); this.timer = 0;
      if (this.state !== 'playing') return;
      this.advance(this.clock(), false);
      this.setState('paused');
    }

    setSpeed(speed) {
      const playing = this.state === 'playing';
      if (playing) this.pause(); // re-anchors the clock at the current position
      if (speed > 0) this.speed = speed;
      if (playing) this.play();
    }

    tick() {
      clearTimeout(this.timer); this.timer = 0;
      if (this.state !== 'playing') return;
      const pos = this.clock();
      this.advance(pos, false);
      if (this.next >= this.events.length) { this.setState('ended'); return; }
      const due = ((this.events[this.next].t - pos) / this.speed) * 1000;
      this.timer = setTimeout(() => this.tick(), Math.max(4, Math.min(due, 250))); // keeps the clock label moving
    }

    // Applies events up to pos. Seeking backwards replays from a fresh screen, without timers.
    seek(pos) {
      pos = Math.min(Math.max(Number(pos) || 0, 0), this.duration);
      const back = pos < this.pos;
      if (back) { this.screen = new Screen(this.cols, this.rows); this.next = 0; }
      this.advance(pos, back);
      if (this.state === 'playing') { this.wall = now(); this.from = pos; this.tick(); }
      else this.setState(this.duration > 0 && pos >= this.duration ? 'ended' : 'paused');
    }

    advance(pos, force) {
      let dirty = force;
      while (this.next < this.events.length && this.events[this.next].t <= pos) {
        const ev = this.events[this.next++];
        if (ev.type === 'o') { this.screen.write(ev.data); dirty = true; }
      }
      this.pos = pos;
      if (dirty) render(this.screen, this.term);
      this.time.textContent = formatTime(pos) + ' / ' + formatTime(this.duration);
      this.range.value = String(pos);
    }
  }

  function mountAll(doc) {
    doc.querySelectorAll('.player[data-cast]').forEach((root) => {
      if (root.dataset.ready) return;
      root.dataset.ready = '1';
      let cast = null;
      try {
        const src = doc.getElementById(root.dataset.cast);
        cast = src && JSON.parse(src.textContent);
      } catch (e) { /* reported below */ }
      if (cast && typeof cast === 'object') {
        const player = new Player(root, cast);
        // Following a live session: show where it is now.
        if (root.closest && root.closest('[data-live]')) player.seek(player.duration);
      } else {
        root.classList.add('player-error');
        root.textContent = 'This recording could not be loaded.';
      }
    });
  }

  if (typeof document !== 'undefined' && document.addEventListener) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => mountAll(document));
    else mountAll(document);
    // The console's live views replace their content; players in it mount again.
    document.addEventListener('airlock:updated', () => mountAll(document));
  }

  if (typeof module !== 'undefined' && module.exports) {
    module.exports = { Screen, Player, timeline, styleClasses, formatTime, mountAll };
  }
})();
