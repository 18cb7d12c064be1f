// Node-RED settings for running the edgebench flow headless:
//   node-red -u <user dir> -s integrations/node-red/settings.js
// The broker comes from EDGEBENCH_MQTT_HOST / EDGEBENCH_MQTT_PORT (defaults below), the
// port Node-RED listens on from PORT. Dashboard 2.0 is served at /dashboard.
process.env.EDGEBENCH_MQTT_HOST = process.env.EDGEBENCH_MQTT_HOST || 'localhost';
process.env.EDGEBENCH_MQTT_PORT = process.env.EDGEBENCH_MQTT_PORT || '1883';

module.exports = {
    flowFile: process.env.EDGEBENCH_FLOW_FILE || 'flows.json',
    flowFilePretty: true,
    credentialSecret: false,
    uiHost: process.env.HOST || '127.0.0.1',
    uiPort: Number(process.env.PORT || 1880),
    // The editor and admin API stay on / (add adminAuth before exposing them).
    httpAdminRoot: '/',
    httpNodeRoot: '/',
    // Flow context (results, boards, alerts) lives in memory: the retained status and
    // sweep state come back from the broker after a restart.
    contextStorage: { default: { module: 'memory' } },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
    logging: { console: { level: 'info', metrics: false, audit: false } },
    editorTheme: { projects: { enabled: false }, tours: false },
    functionExternalModules: false,
    externalModules: { autoInstall: false, palette: { allowInstall: false } }
};
