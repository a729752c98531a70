/** Adds a value to its key's list in a map of lists (a group-by that keeps the order values come in). */
export function addTo<K, V>(groups: Map<K, V[]>, key: K, value: V): void {
  const list = groups.get(key);
  if (list) list.push(value);
  else groups.set(key, [value]);
}
