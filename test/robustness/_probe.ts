import { startServer } from '../helpers/server.ts';
import { Peer } from './peer.ts';

const ts = await startServer({ registration: { open: true } });
await ts.addUser('alice', 'pw');
await ts.addUser('bob', 'pw');
const inputs = process.argv.slice(2);
for (const input of inputs) {
  const p = await Peer.login(ts, 'alice');
  p.send(input);
  try {
    await p.sync();
  } catch (e) {
    console.log('SYNC FAIL', String(e).slice(0, 300));
  }
  p.raw.input && console.log('IN :', input.slice(0, 200), '\nOUT:', p.raw.input.slice(0, 700));
  p.close();
}
console.log(ts.logs.filter((l) => !/debug/.test(l.slice(0, 40)) || /fail|error/i.test(l)).slice(-20).join('\n'));
await ts.stop();
