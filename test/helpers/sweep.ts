import { probeDocker } from "../../src/docker/client.js";
import { TEST_LABEL } from "./labels.js";

/** Remove every container, volume, network and image labelled as a test object. Returns how many were found. */
export async function sweepTestObjects(when: string): Promise<number> {
  const probe = await probeDocker(2000);
  if (!probe.ok) return 0;
  const { docker } = probe;
  const filters = { label: [TEST_LABEL] };
  let count = 0;
  for (const info of await docker.listContainers({ all: true, filters })) {
    count++;
    await docker
      .getContainer(info.Id)
      .remove({ force: true, v: true })
      .catch(() => {});
  }
  const volumes = (await docker.listVolumes({ filters })).Volumes ?? [];
  for (const volume of volumes) {
    count++;
    await docker
      .getVolume(volume.Name)
      .remove()
      .catch(() => {});
  }
  for (const network of await docker.listNetworks({ filters })) {
    count++;
    await docker
      .getNetwork(network.Id)
      .remove()
      .catch(() => {});
  }
  for (const image of await docker.listImages({ filters })) {
    count++;
    await docker
      .getImage(image.Id)
      .remove({ force: true })
      .catch(() => {});
  }
  if (count > 0)
    process.stderr.write(`sweep ${when}: removed ${count} Docker object(s) labelled ${TEST_LABEL}\n`);
  return count;
}
