#!/usr/bin/env node
// Opens a Dashboard 2.0 page in headless Chromium over the DevTools protocol, waits
// until the page's text contains every word given, then prints the page text (JSON)
// and saves a PNG screenshot. Used by the Node-RED test and to refresh the README's
// screenshot:
//   node render.js --url http://127.0.0.1:1880/dashboard/edgebench --png shot.png \
//     --wait tiny_cnn --wait board-1 [--click 'Start sweep'] [--chromium chromium] [--timeout-s 60]
// With --click, the button whose text contains it is clicked once the page shows the
// words waited for (then the picture is taken).
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const WebSocket = require('ws'); // comes with node-red

const args = { wait: [], chromium: 'chromium', 'timeout-s': '60', width: '1280', height: '1000' };
for (let i = 2; i < process.argv.length; i += 2) {
    const k = process.argv[i].replace(/^--/, '');
    const v = process.argv[i + 1];
    if (k === 'wait') args.wait.push(v); else args[k] = v;
}
if (!args.url || !args.png) {
    console.error('usage: render.js --url URL --png FILE [--wait WORD]...');
    process.exit(2);
}
const deadline = Date.now() + Number(args['timeout-s']) * 1000;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edgebench-chromium-'));
const browser = spawn(args.chromium, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--hide-scrollbars',
    '--no-first-run', '--no-default-browser-check', '--remote-debugging-port=0',
    `--user-data-dir=${profile}`, `--window-size=${args.width},${args.height}`, 'about:blank'
], { stdio: ['ignore', 'ignore', 'pipe'] });

function finish(code, message) {
    if (message) console.error(message);
    browser.kill('SIGKILL');
    try { fs.rmSync(profile, { recursive: true, force: true }); } catch (e) { /* best effort */ }
    process.exit(code);
}
setTimeout(() => finish(1, 'render.js: timed out'), Math.max(1, deadline - Date.now()) + 5000).unref();
browser.on('error', (e) => finish(1, `render.js: cannot start ${args.chromium}: ${e.message}`));

let stderr = '';
browser.stderr.on('data', (d) => {
    stderr += d;
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
    if (m && !browser.connected_) {
        browser.connected_ = true;
        run(m[1]).catch((e) => finish(1, `render.js: ${e.message}`));
    }
});

async function pageSocket(browserWs) {
    // The first page target (about:blank).
    const port = new URL(browserWs).port;
    const res = await fetch(`http://127.0.0.1:${port}/json/list`);
    const page = (await res.json()).find((t) => t.type === 'page');
    return new WebSocket(page.webSocketDebuggerUrl, { perMessageDeflate: false });
}

async function run(browserWs) {
    const ws = await pageSocket(browserWs);
    await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
    let id = 0;
    const waiting = new Map();
    ws.on('message', (data) => {
        const msg = JSON.parse(data);
        if (msg.id && waiting.has(msg.id)) {
            const { resolve, reject } = waiting.get(msg.id);
            waiting.delete(msg.id);
            if (msg.error) reject(new Error(JSON.stringify(msg.error))); else resolve(msg.result);
        }
    });
    const send = (method, params = {}) => new Promise((resolve, reject) => {
        id += 1;
        waiting.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
    });
    await send('Page.enable');
    await send('Emulation.setDeviceMetricsOverride', {
        width: Number(args.width), height: Number(args.height), deviceScaleFactor: 1, mobile: false
    });
    await send('Page.navigate', { url: args.url });
    let text = '';
    while (Date.now() < deadline) {
        const r = await send('Runtime.evaluate', { expression: 'document.body ? document.body.innerText : ""', returnByValue: true });
        text = r.result.value || '';
        if (args.wait.every((w) => text.includes(w))) break;
        await new Promise((r2) => setTimeout(r2, 250));
    }
    const missing = args.wait.filter((w) => !text.includes(w));
    let clicked = null;
    if (args.click && !missing.length) {
        const r = await send('Runtime.evaluate', {
            expression: `(() => { const b = [...document.querySelectorAll('button')]
                .find((e) => e.innerText.includes(${JSON.stringify(args.click)}));
                if (b) b.click(); return !!b; })()`,
            returnByValue: true
        });
        clicked = r.result.value === true;
    }
    // Let charts finish their animation before the picture.
    await new Promise((r2) => setTimeout(r2, 1500));
    const shot = await send('Page.captureScreenshot', { format: 'png' });
    fs.writeFileSync(args.png, Buffer.from(shot.data, 'base64'));
    process.stdout.write(JSON.stringify({ text, missing, clicked }) + '\n');
    if (missing.length) finish(3, `render.js: page never showed ${missing.join(', ')}`);
    if (clicked === false) finish(4, `render.js: no button with ${JSON.stringify(args.click)}`);
    finish(0, '');
}
