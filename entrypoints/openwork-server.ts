#!/usr/bin/env node
import { serverMain } from "../src/server/main.js";

process.exitCode = await serverMain(process.argv.slice(2));
