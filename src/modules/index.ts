// The modules each kind of host loads, in order. One XMPP feature per file.
import { msnGateway } from '../gateway/msn/index.ts';
import { msnRoomInvitations } from '../gateway/msn/room-invitations.ts';
import type { Module } from '../host/host.ts';
import { mucModule } from '../muc/index.ts';
import { avatarModule } from './avatar.ts';
import { blockingModule } from './blocking.ts';
import { bookmarksModule } from './bookmarks.ts';
import { capsModule } from './caps.ts';
import { carbonsModule } from './carbons.ts';
import { discoModule } from './disco.ts';
import { invisibleModule } from './invisible.ts';
import { externalServicesModule } from './external-services.ts';
import { httpUploadModule } from './http-upload.ts';
import { lastModule } from './last.ts';
import { mamModule } from './mam.ts';
import { messageModule } from './message.ts';
import { offlineModule } from './offline.ts';
import { pepModule } from './pep.ts';
import { pingModule } from './ping.ts';
import { presenceModule } from './presence.ts';
import { privateModule } from './private.ts';
import { pushModule } from './push.ts';
import { registerModule } from './register.ts';
import { rosterModule } from './roster.ts';
import { rosterSubsyncGuardModule } from './roster-subsync-guard.ts';
import { timeModule } from './time.ts';
import { unacknowledgedModule } from './unacknowledged.ts';
import { vcardModule } from './vcard.ts';
import { versionModule } from './version.ts';

/** Modules of the user domain (accounts live here). */
export const userHostModules: Module[] = [
  rosterModule,
  presenceModule,
  invisibleModule,
  messageModule,
  offlineModule,
  unacknowledgedModule,
  carbonsModule,
  mamModule,
  blockingModule,
  discoModule,
  vcardModule,
  pingModule,
  versionModule,
  timeModule,
  lastModule,
  registerModule,
  rosterSubsyncGuardModule,
  capsModule,
  pepModule,
  privateModule,
  bookmarksModule,
  avatarModule,
  externalServicesModule,
  pushModule,
];

/** Modules of the internal MSN transport domain. */
export const componentHostModules: Module[] = [msnGateway, msnRoomInvitations];

/** Modules of the multi-user chat service domain (muc.domain). */
export const mucHostModules: Module[] = [mucModule];

/** Modules of the HTTP upload domain (upload.<domain>, XEP-0363). */
export const uploadHostModules: Module[] = [httpUploadModule];
