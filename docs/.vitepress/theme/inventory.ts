// What this version of deploy-mcp has, from inventory.json (written by scripts/gen_reference.py from the server
// and the CLI). Pages ask it what is missing, so a "not built yet" note disappears the moment the thing lands.
import inventory from './inventory.json'

function words(value?: string): string[] {
  return (value ?? '').split(/\s+/).filter(Boolean)
}

/** The named tools and commands this version lacks, commands written as `deploy-mcp NAME`. */
export function missing(tools?: string, commands?: string): string[] {
  return [
    ...words(tools).filter((name) => !inventory.tools.includes(name)),
    ...words(commands)
      .filter((name) => !inventory.commands.includes(name))
      .map((name) => `deploy-mcp ${name}`),
  ]
}
