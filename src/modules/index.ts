// The modules each kind of host loads, in order. One XMPP feature per file.
import type { Module } from '../host/host.ts';

/** Modules of the user domain (accounts live here). */
export const userHostModules: Module[] = [];

/** Modules of the internal MSN transport domain. */
export const componentHostModules: Module[] = [];
