// The hosted service's axios example, with only the base URL and key changed
// (DARKROOM_BASE_URL, DARKROOM_API_KEY), followed by its /result example polled until done,
// and a plain download of the link. Writes the image to the path given as first argument.
const axios = require('axios')
const fs = require('fs')

const BASE = process.env.DARKROOM_BASE_URL
const YOUR_API_KEY = process.env.DARKROOM_API_KEY

async function main() {
  const request = axios({ method: 'POST', url: `${BASE}/v1/media/create`, headers: { Authorization: YOUR_API_KEY, }, data: { model: 'google-imagen-3', ar: '9:21', prompt: "Cinematic, high-quality photo of Thanos in a serene Japanese forest, clad in a traditional samurai armor made of white porcelain, adorned with intricate blue paintings that evoke the art of ancient Japanese ceramics. The armor's delicate, hand-painted designs seem to shimmer in the soft, dappled light filtering through the forest canopy. Thanos wields a heavy, curved katana with a worn, wooden scabbard, its blade gleaming with a subtle, deadly sheen. The scene is captured in a dramatic, close-up angle, with the misty forest atmosphere and the soft, golden light of dawn or dusk accentuating the armor's ethereal beauty, while the weight and power of the katana seem to anchor Thanos to the earth, ready to unleash his fury upon the world.", },})
  const created = (await request).data
  console.log(JSON.stringify(created))
  let task = created
  for (let i = 0; i < 600 && !['done', 'failed', 'error'].includes(task.status); i++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    const poll = axios({ method: 'POST', url: `${BASE}/v1/media/result`, headers: { Authorization: YOUR_API_KEY, }, data: { task_id: created.id, },})
    task = (await poll).data
  }
  console.log(JSON.stringify(task))
  const image = await axios({ method: 'GET', url: task.url, responseType: 'arraybuffer' })
  fs.writeFileSync(process.argv[2], Buffer.from(image.data))
}

main().catch((error) => { console.error(error); process.exit(1) })
