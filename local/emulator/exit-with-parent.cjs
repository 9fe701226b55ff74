// Preloaded into cognito-local: its stdin is a pipe from the emulator, which only ends when the emulator's process
// is gone, however it ended (a SIGKILL runs no exit handler). Then there is nobody left to serve: leave too.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
