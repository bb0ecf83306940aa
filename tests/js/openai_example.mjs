// OpenAI's own Node SDK, unchanged but for its base URL and key (DARKROOM_BASE_URL,
// DARKROOM_API_KEY): one images.generate call, as an OpenAI program makes it. Writes each image
// to the path given as first argument, numbered, and prints how many it got.
import fs from 'node:fs'
import OpenAI from 'openai'

const client = new OpenAI({ baseURL: `${process.env.DARKROOM_BASE_URL}/v1`, apiKey: process.env.DARKROOM_API_KEY })

const result = await client.images.generate({
  model: 'google-imagen-3',
  prompt: 'A cute baby sea otter',
  n: 2,
  size: '1024x1024',
  response_format: 'b64_json',
})
result.data.forEach((image, index) => {
  fs.writeFileSync(`${process.argv[2]}.${index}.png`, Buffer.from(image.b64_json, 'base64'))
})
console.log(JSON.stringify({ created: result.created, images: result.data.length }))
